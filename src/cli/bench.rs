//! `mqttcli bench conn|pub|sub|merge`: the clap types and their conversion to the bench's
//! options. Kept apart from `mod.rs`: bench has its own short flags (`-c` is the client count
//! here, `--no-clean` keeps only its long form).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::plan::{sends_only, Plan};
use super::settings::{resolve, Purpose, Resolved};
use super::{parse_positive, parse_qos, ConnArgs, Environment};
use crate::commands::bench::{self, Kind, Template, HEADER_LEN};
use crate::connection::Qos;
use crate::exit::{self, usage};
use crate::{duration, topic};

pub const BENCH_EXAMPLES: &str = "\
Examples:
  mqttcli bench conn -c 1000 --connect-rate 200 --duration 60s
  mqttcli bench sub -c 2 -t 'bench/#' -q 1 --duration 70s --json > sub.json
  mqttcli bench pub -c 10 -t 'bench/%i' -q 1 -s 256 --rate 100 --duration 60s
  mqttcli bench merge pod-0.json pod-1.json";

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum BenchCommand {
    /// Open -c connections at --connect-rate and hold them: TCP, TLS and CONNACK latency, failures by reason
    #[command(after_help = format!("Example:\n  mqttcli bench conn -c 1000 --connect-rate 200 --duration 60s\n\n{}", exit::TABLE))]
    Conn(BenchConnArgs),
    /// -c clients publish -n messages each (or for --duration): publish-to-ack latency
    #[command(after_help = format!("Examples:\n  mqttcli bench pub -c 10 -t 'bench/%i' -n 1000 -q 1\n  mqttcli bench pub -c 4 -t bench/x -s 1024 --rate 500 --duration 30s --json > pub.json\n\n{}", exit::TABLE))]
    Pub(BenchPubArgs),
    /// -c clients subscribe to -t: end-to-end latency, loss, duplicates and reordering
    #[command(after_help = format!("Example:\n  mqttcli bench sub -c 2 -t 'bench/#' -q 1 --duration 70s --json > sub.json\n\n{}", exit::TABLE))]
    Sub(BenchSubArgs),
    /// Add up the --json summaries of runs side by side (one per machine) into one
    #[command(after_help = format!("Example:\n  mqttcli bench merge pod-0.json pod-1.json pod-2.json\n\n{}", exit::TABLE))]
    Merge(BenchMergeArgs),
}

// What every bench kind that connects shares.
#[derive(Args, Debug)]
#[command(next_help_heading = "Load")]
pub struct LoadArgs {
    /// Clients, each one connection
    #[arg(short = 'c', long = "clients", value_name = "N", default_value_t = 1, value_parser = parse_positive)]
    pub clients: u64,

    /// New connections per second [default: all at once]
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub connect_rate: Option<f64>,

    /// Stop after DURATION from the first connection (e.g. 30s, 5m) [default: when done, or
    /// at Ctrl-C]
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub duration: Option<Duration>,

    /// Added to each client's index (%i in -t, -i): give each machine its own range
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub client_offset: u64,

    /// Print the summary as one JSON object, with the histograms `bench merge` adds up
    #[arg(long)]
    pub json: bool,

    /// Connect from these local addresses, dealt out to the clients in turn: past the ~28 000
    /// connections one address can open to one broker
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',', value_parser = parse_ifaddr)]
    pub ifaddr: Vec<IpAddr>,

    /// Once a client thread reads 16 packets or more a millisecond, it waits this long before
    /// reading again, so that a read carries every packet that came meanwhile (0: read each
    /// packet as it arrives, and have no unpaced QoS 1 publisher wait for a quarter of its
    /// window's PUBACKs either). A latency measured then includes up to this wait; a lone
    /// message or a lower rate never waits
    #[arg(long, value_name = "DURATION", default_value = "200us", value_parser = parse_read_pause)]
    pub read_pause: Duration,
}

#[derive(Args, Debug)]
#[command(mut_arg("no_clean", |a| a.short(None)))]
pub struct BenchConnArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(mut_arg("no_clean", |a| a.short(None)))]
pub struct BenchPubArgs {
    /// Topic; %i is the client's index, e.g. bench/%i
    #[arg(short = 't', long, value_name = "TEMPLATE", default_value = "mqttcli/bench/%i", value_parser = topic::parse_topic)]
    pub topic: String,

    /// Messages per client [default: until --duration or Ctrl-C]
    #[arg(short = 'n', long = "count", value_name = "M", value_parser = parse_positive)]
    pub count: Option<u64>,

    /// Messages per second per client, paced; latency then counts from when each was due
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Quality of service: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: Qos,

    /// Payload size in bytes, the 24-byte header included
    #[arg(short = 's', long = "size", value_name = "BYTES", default_value_t = 64)]
    pub size: usize,

    /// After the last message, how long a client waits for its acknowledgements
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub ack_timeout: Duration,

    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[command(mut_arg("no_clean", |a| a.short(None)))]
pub struct BenchSubArgs {
    /// Topic filter; %i is the client's index
    #[arg(short = 't', long, value_name = "TEMPLATE", default_value = "mqttcli/bench/#", value_parser = topic::parse_filter)]
    pub topic: String,

    /// Messages per client after which it ends [default: until --duration or Ctrl-C]
    #[arg(short = 'n', long = "count", value_name = "M", value_parser = parse_positive)]
    pub count: Option<u64>,

    /// QoS of the subscription: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: Qos,

    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct BenchMergeArgs {
    /// The --json summaries to add up (of one kind: all pub, all sub or all conn)
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Print the merged summary as JSON (which can be merged again)
    #[arg(long)]
    pub json: bool,
}

impl BenchCommand {
    pub fn conn(&self) -> Option<&ConnArgs> {
        match self {
            BenchCommand::Conn(a) => Some(&a.conn),
            BenchCommand::Pub(a) => Some(&a.conn),
            BenchCommand::Sub(a) => Some(&a.conn),
            BenchCommand::Merge(_) => None,
        }
    }

    pub fn conn_mut(&mut self) -> Option<&mut ConnArgs> {
        match self {
            BenchCommand::Conn(a) => Some(&mut a.conn),
            BenchCommand::Pub(a) => Some(&mut a.conn),
            BenchCommand::Sub(a) => Some(&mut a.conn),
            BenchCommand::Merge(_) => None,
        }
    }
}

fn parse_ifaddr(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not an IP address: give this machine's addresses, e.g. 10.0.0.2,10.0.0.3")
    })
}

/// At most 10 ms: a longer pause would be most of what a busy run measures.
fn parse_read_pause(s: &str) -> Result<Duration, String> {
    let d = duration::parse(s)?;
    if d > Duration::from_millis(10) {
        return Err(format!(
            "--read-pause {s} is longer than it is useful: the pause adds to every latency measured while busy; use at most 10ms, or 0 to read each packet at once"
        ));
    }
    Ok(d)
}

/// A positive rate, fractions allowed (0.5: one every two seconds).
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e9 => Ok(r),
        _ => Err(format!(
            "'{s}' is not a rate: give a positive number per second, e.g. 100 or 0.5"
        )),
    }
}

/// The plan of `bench conn|pub|sub`; None for `merge`, which connects to nothing.
pub fn plan(command: BenchCommand, env: &Environment) -> Result<Option<Plan>> {
    let (load, conn, kind, qos) = match command {
        BenchCommand::Conn(a) => (a.load, a.conn, Kind::Conn, Qos::AtMostOnce),
        BenchCommand::Pub(a) => {
            if a.size < HEADER_LEN {
                return Err(usage(format!(
                    "-s {} is smaller than the {HEADER_LEN}-byte header every bench payload starts with: use -s {HEADER_LEN} or more",
                    a.size
                )));
            }
            if a.size > crate::connection::MAX_PACKET / 2 {
                return Err(usage(format!(
                    "-s {} is larger than MQTT carries: use at most 128 MiB",
                    a.size
                )));
            }
            let kind = Kind::Pub(bench::PubOptions {
                topic: Template(a.topic),
                qos: a.qos,
                retain: false,
                size: a.size,
                count: a.count,
                rate: a.rate,
                ack_timeout: a.ack_timeout,
                batch_reads: !a.load.read_pause.is_zero(),
            });
            (a.load, a.conn, kind, a.qos)
        }
        BenchCommand::Sub(a) => {
            let kind = Kind::Sub(bench::SubOptions {
                topic: Template(a.topic),
                qos: a.qos,
                count: a.count,
            });
            (a.load, a.conn, kind, a.qos)
        }
        BenchCommand::Merge(_) => return Ok(None),
    };
    let Resolved {
        mut settings,
        packets,
        ..
    } = resolve(&conn, env, Purpose::Bench { qos })?;
    sends_only(&packets, "bench", &[])?;
    if !matches!(kind, Kind::Pub(_)) {
        // rumqttc fills a slot per in-flight PUBLISH at connect (100 by default, 6.4 KB):
        // `conn` and `sub` send none, and `conn` holds thousands of connections.
        settings.inflight = Some(1);
    }
    let name = match kind {
        Kind::Conn => "conn",
        Kind::Pub(_) => "pub",
        Kind::Sub(_) => "sub",
    };
    // As the issue asks: ids the broker's log can be read by, PREFIX and the index.
    let client_id = match (&conn.id, &conn.id_prefix) {
        (Some(id), _) => Template(id.clone()),
        (None, Some(prefix)) => Template(format!("{prefix}%i")),
        (None, None) => Template(format!("mqttcli-bench-{name}-%i")),
    };
    if load.clients > 1 && !client_id.has_index() {
        return Err(usage(format!(
            "-i {} gives all {} clients the same id, and each would take the others' connection over: put %i (the client's index) in it, or use -I PREFIX",
            client_id.0, load.clients
        )));
    }
    // The header carries the publisher's index in 32 bits.
    if load.client_offset.saturating_add(load.clients) > u64::from(u32::MAX) {
        return Err(usage(format!(
            "--client-offset {} with -c {} goes past the largest client index, {}: use a smaller offset",
            load.client_offset,
            load.clients,
            u32::MAX
        )));
    }
    if !load.ifaddr.is_empty() && settings.unix.is_some() {
        return Err(usage(
            "--ifaddr chooses the address TCP connections leave from, and --unix makes none: drop one of them",
        ));
    }
    let options = bench::Options {
        kind,
        clients: load.clients,
        client_offset: load.client_offset,
        client_id,
        connect_rate: load.connect_rate,
        duration: load.duration,
        json: load.json,
        progress: !conn.quiet,
        sources: load.ifaddr,
        read_pause: load.read_pause,
    };
    Ok(Some(Plan::Bench(options, settings)))
}

#[cfg(test)]
mod tests {
    use super::super::Cli;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from(["mqttcli", "bench"].into_iter().chain(args.iter().copied()))
    }

    #[test]
    fn dash_c_is_the_client_count_and_no_clean_keeps_its_long_form() {
        assert!(parse(&["pub", "-c", "3", "-n", "10"]).is_ok());
        assert!(parse(&["sub", "-c", "3", "--no-clean", "-i", "s%i"]).is_ok());
        assert!(parse(&["conn", "-c", "0"]).is_err());
        assert!(parse(&["pub", "--rate", "0"]).is_err());
        assert!(parse(&["pub", "--rate", "0.5"]).is_ok());
        assert!(parse(&["merge"]).is_err());
    }
}
