//! The command line, the top of the house: every clap type and its help text (here and in
//! `conn.rs`), the generated completions and man pages (`complete.rs`), and the one conversion
//! from arguments to what the commands run with (`settings.rs` for the connection, `plan.rs`
//! for each command). Values are checked by clap (so a bad one is a usage error with exit
//! code 2); nothing below this module imports it.

// clap conventions in this file:
// - `short = 'x'` always explicit; `long` implicit.
// - Options that take a value have an uppercase value_name.
// - Flags keep mosquitto's spelling so people's habits carry over.

mod bench;
pub mod complete;
mod conn;
mod environment;
mod plan;
pub mod properties;
pub mod settings;

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use clap_complete::Shell;

pub use bench::{BenchArgs, BenchCommand};
pub use conn::{parse_header, ConnArgs, ReconnectArgs, TlsArgs, WebArgs};
pub use environment::Environment;
pub use plan::{plan, Plan};

use crate::connection::{Qos, RetainHandling};
use crate::{duration, exit, topic};

const AFTER_HELP: &str = "\
Examples:
  mqttcli sub -h broker.emqx.io -t 'python/mqtt' -v
  mqttcli pub -h broker.emqx.io -t 'python/mqtt' -m 'messages: {counter}' --interval 1s
  mqttcli pub -L mqtt://user@localhost:1883/sensors/1 -q 1 -l < readings.txt
  mqttcli unsub -i my-session -t 'sensors/#'
  mqttcli check -h broker.emqx.io
  mqttcli rr -V 5 -t services/time -m now -W 5s
  mqttcli bench pub -c 10 -t 'bench/%i' -n 1000 -q 1";

/// What this build can do, for `--version` (`-V` is the protocol version).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rustls/ring, websocket, http-proxy)"
);

#[derive(Parser, Debug)]
#[command(
    name = "mqttcli",
    version,
    long_version = LONG_VERSION,
    about = "Publish, subscribe and unsubscribe over MQTT 3.1.1 and 5.0",
    after_help = format!("{AFTER_HELP}\n\n{}", exit::TABLE),
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    propagate_version = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print help (-h is the broker host, as in mosquitto's tools)
    #[arg(long, action = ArgAction::Help, global = true)]
    help: Option<bool>,

    /// Print the version and the build's features
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,
}

impl Cli {
    /// Parses argv as clap does, then regroups `-D`'s values by occurrence.
    pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        // `bench pub` and the like: their flags are one level further down.
        let sub = matches
            .subcommand()
            .map(|(_, sub)| sub.subcommand().map_or(sub, |(_, inner)| inner));
        if let (Some(sub), Some(conn)) = (sub, cli.command.conn_mut()) {
            conn.property = sub
                .get_occurrences::<String>("property_values")
                .map(|o| o.map(|values| values.cloned().collect()).collect())
                .unwrap_or_default();
        }
        Ok(cli)
    }
}

impl Command {
    /// The connection flags of a subcommand that connects.
    pub fn conn(&self) -> Option<&ConnArgs> {
        match self {
            Command::Pub(a) => Some(&a.conn),
            Command::Sub(a) => Some(&a.conn),
            Command::Unsub(a) => Some(&a.conn),
            Command::Check(a) => Some(&a.conn),
            Command::Rr(a) => Some(&a.conn),
            Command::Bench(a) => a.command.conn(),
            Command::Completions(_) | Command::Man(_) => None,
        }
    }

    fn conn_mut(&mut self) -> Option<&mut ConnArgs> {
        match self {
            Command::Pub(a) => Some(&mut a.conn),
            Command::Sub(a) => Some(&mut a.conn),
            Command::Unsub(a) => Some(&mut a.conn),
            Command::Check(a) => Some(&mut a.conn),
            Command::Rr(a) => Some(&mut a.conn),
            Command::Bench(a) => a.command.conn_mut(),
            Command::Completions(_) | Command::Man(_) => None,
        }
    }
}

// Deferred: clap builds the arguments of the subcommand given, not of all of them (each
// repeats the connection flags), so a run starts without building, and paging in, the rest.
// A deferred subcommand's flattened structs are added after its own attributes: their doc
// comments would replace its about text, so those structs carry plain comments.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Publish messages to a topic
    #[command(after_help = format!("Examples:\n  mqttcli pub -t sensors/1 -m 21.5\n  mqttcli pub -t python/mqtt -m 'messages: {{counter}}' --interval 1s --repeat 10\n  tail -f app.log | mqttcli pub -t logs/app -q 1 -l\n  mqttcli pub -l --topic-sep '\\t' -q 1 < readings.tsv\n  mqttcli pub -h test.example -V 5 --jsonl --speed 10 < capture.jsonl\n\n{}", exit::TABLE))]
    Pub(PubArgs),
    /// Subscribe to topic filters and print the messages
    #[command(after_help = format!("Examples:\n  mqttcli sub -t 'sensors/#' -v\n  mqttcli sub -t python/mqtt -F 'Received `{{payload}}` from `{{topic}}` topic'\n  mqttcli sub -t 'events/#' --json | jq .payload\n  mqttcli sub -t status -C 1 -W 10\n\n{}", exit::TABLE))]
    Sub(SubArgs),
    /// Remove subscriptions from a persistent session (needs the session's -i)
    #[command(after_help = format!("Example:\n  mqttcli unsub -i my-session -t 'sensors/#'\n\n{}", exit::TABLE))]
    Unsub(UnsubArgs),
    /// Check a broker end to end: connect, subscribe, publish, receive, unsubscribe, disconnect
    #[command(after_help = format!("{}\n\n{}", CHECK_EXAMPLES, exit::TABLE))]
    Check(CheckArgs),
    /// Request/response (MQTT 5): publish a request, print the matching response
    #[command(after_help = format!("{}\n\n{}", RR_EXAMPLES, exit::TABLE))]
    Rr(RrArgs),
    /// Load a broker: many connections, publishers or subscribers; latency percentiles
    #[command(after_help = format!("{}\n\n{}", bench::BENCH_EXAMPLES, exit::TABLE))]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff), for packagers
    #[command(hide = true)]
    Man(ManArgs),
}

fn parse_qos(s: &str) -> Result<Qos, String> {
    Qos::parse(s)
}

pub(crate) fn parse_positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

fn parse_window(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a window of 1 to 65535 messages")),
    }
}

/// `--topic-sep`: not empty; `\t` (as typed, two characters) is a tab, which a shell makes
/// awkward to type.
fn parse_separator(s: &str) -> Result<String, String> {
    match s {
        "" => Err(
            "the topic separator is empty: give one, e.g. --topic-sep '\\t' for a tab".to_string(),
        ),
        "\\t" => Ok("\t".to_string()),
        _ => Ok(s.to_string()),
    }
}

/// `--speed`: a factor above zero.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!(
            "'{s}' is not a speed: give a factor above 0, e.g. 1 (as recorded), 10 (ten times faster) or 0.5"
        )),
    }
}

#[derive(Args, Debug)]
pub struct PubArgs {
    /// Topic to publish to (or the path of -L's URL)
    #[arg(short = 't', long, value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub topic: Option<String>,

    #[command(flatten)]
    pub payload: PayloadArgs,

    /// Send each line of stdin as a message, over one connection
    #[arg(short = 'l', long, group = "payload")]
    pub stdin_lines: bool,

    /// With -l: each line is TOPIC, SEP, PAYLOAD, split at the first SEP (\t is a tab)
    // Needing -l (and --speed needing --jsonl) is checked in plan.rs: clap's `requires` lets
    // it pass when another member of the payload group (-m) is given.
    #[arg(long, value_name = "SEP", conflicts_with = "topic", value_parser = parse_separator)]
    pub topic_sep: Option<String>,

    /// Replay stdin's JSON Lines as `sub --json` writes them: each line's topic, payload, QoS,
    /// retain flag and MQTT 5 properties (-t, -q, -r for lines that lack them)
    #[arg(long, group = "payload")]
    pub jsonl: bool,

    /// With --jsonl: pace the replay by the recorded times, FACTOR times as fast (1: as
    /// recorded, 10: ten times faster) [default: as fast as the broker acknowledges]
    #[arg(long, value_name = "FACTOR", value_parser = parse_speed)]
    pub speed: Option<f64>,

    /// Quality of service: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: Qos,

    /// Ask the broker to retain the message
    #[arg(short = 'r', long)]
    pub retain: bool,

    /// Publish again every DURATION (e.g. 1s, 250ms), --repeat times or until interrupted
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub interval: Option<Duration>,

    /// Publish the message N times (with --interval: N ticks)
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub repeat: Option<u64>,

    /// QoS 1/2 messages in flight at most, sent and not yet acknowledged (default: 100; 20 for
    /// QoS 2 under MQTT 3.1.1; an MQTT 5 broker's Receive Maximum lowers it)
    #[arg(short = 'M', long = "max-inflight", value_name = "N", value_parser = parse_window)]
    pub max_inflight: Option<u16>,

    /// Once the input has ended (end of stdin, the last tick), wait at most DURATION for the
    /// broker to acknowledge what is outstanding; then exit non-zero with the count
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration::parse)]
    pub ack_timeout: Duration,

    /// Send -m exactly as given, with no placeholders filled in
    #[arg(long)]
    pub literal: bool,

    #[command(flatten)]
    pub message_properties: MessagePropertyArgs,

    /// MQTT 5 response topic: where a responder should answer
    #[arg(long, value_name = "TOPIC", value_parser = topic::parse_topic, help_heading = "MQTT 5")]
    pub response_topic: Option<String>,

    /// Send every topic whole: no topic aliases on a stream (by default a stream sends a
    /// topic once, then its alias, when the broker takes aliases)
    #[arg(long, help_heading = "MQTT 5")]
    pub no_topic_alias: bool,

    /// MQTT 5 correlation data, the bytes of TEXT (binary: --correlation-data-base64)
    #[arg(long, value_name = "TEXT", help_heading = "MQTT 5")]
    pub correlation_data: Option<String>,

    /// MQTT 5 correlation data given in base64, as `sub --json` writes binary data
    #[arg(long, value_name = "BASE64", conflicts_with = "correlation_data", value_parser = parse_base64, help_heading = "MQTT 5")]
    pub correlation_data_base64: Option<bytes::Bytes>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

// MQTT 5 properties of a published message, spelled as flags (`pub`, and `rr`'s request).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "MQTT 5")]
pub struct MessagePropertyArgs {
    /// User property on the PUBLISH, KEY=VALUE (repeatable; order and repeated keys are kept)
    #[arg(long = "user-property", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub user_property: Vec<(String, String)>,

    /// Content type of the message, e.g. application/json
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,

    /// Seconds the broker keeps the message for subscribers that have not yet received it
    #[arg(long = "message-expiry", value_name = "SECS")]
    pub message_expiry: Option<u32>,
}

/// `KEY=VALUE`, split at the first `=` (a value may hold more).
fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => Err(format!(
            "'{s}' is not KEY=VALUE: write the user property as key=value"
        )),
    }
}

fn parse_base64(s: &str) -> Result<bytes::Bytes, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(bytes::Bytes::from)
        .map_err(|e| format!("'{s}' is not base64 ({e}): give the data in standard base64"))
}

/// `0|1|2`, or `always|new|never`.
fn parse_retain_handling(s: &str) -> Result<RetainHandling, String> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "always" => Ok(RetainHandling::Always),
        "1" | "new" => Ok(RetainHandling::New),
        "2" | "never" => Ok(RetainHandling::Never),
        _ => Err(format!(
            "'{s}' is not a retain handling: use 0 (always), 1 (new) or 2 (never)"
        )),
    }
}

// Where a message comes from, as `pub` and `rr` both spell it; `pub -l` joins the group.
#[derive(Args, Debug)]
#[group(id = "payload", required = true, multiple = false)]
pub struct PayloadArgs {
    /// The payload; placeholders {counter} (from 0; short form: n in braces), {time}
    /// (RFC 3339), {unix} and {unix_ms} are filled in
    #[arg(short = 'm', long, value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Send the whole FILE as the payload (binary-safe)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Send all of stdin as the payload
    #[arg(short = 's', long)]
    pub stdin_message: bool,

    /// Send an empty payload (pub -r -n clears the retained message)
    #[arg(short = 'n', long)]
    pub null_message: bool,
}

// How received messages are printed: every one by `sub`, the response by `rr`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print the topic before the payload
    #[arg(short = 'v', long, conflicts_with_all = ["format", "json"])]
    pub verbose: bool,

    /// Print no newline after each message
    #[arg(short = 'N', long = "no-newline", conflicts_with = "json")]
    pub no_newline: bool,

    /// Output template: {topic} {payload} {qos} {retain} {len} {time} {hex} {props}; {{ and }} for braces
    #[arg(
        short = 'F',
        long = "format",
        value_name = "TEMPLATE",
        conflicts_with = "json"
    )]
    pub format: Option<String>,

    /// One JSON object per message: topic, qos, retain, time, payload (utf8 or base64),
    /// properties; `pub --jsonl` replays them
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SubArgs {
    /// Topic filter to subscribe to (repeatable; + and # wildcards, $share/GROUP/FILTER)
    #[arg(short = 't', long, value_name = "FILTER", value_parser = topic::parse_filter)]
    pub topic: Vec<String>,

    /// QoS: one for all filters, or one per -t in order
    #[arg(short = 'q', long, value_name = "QOS", value_parser = parse_qos)]
    pub qos: Vec<Qos>,

    /// Exit after N messages
    #[arg(short = 'C', long = "count", value_name = "N", value_parser = parse_positive)]
    pub count: Option<u64>,

    /// Exit with code 6 if not done after DURATION (seconds, or e.g. 500ms)
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,

    /// Exit once subscribed (after SUBACK), e.g. to set up a persistent session
    #[arg(short = 'E', long = "exit-after-sub")]
    pub exit_after_sub: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Do not print retained messages
    #[arg(short = 'R', long = "no-retained", conflicts_with = "retained_only")]
    pub no_retained: bool,

    /// Print only retained messages, and exit at the first message that is not retained
    #[arg(long)]
    pub retained_only: bool,

    /// Hide messages whose topic matches FILTER (repeatable)
    #[arg(short = 'T', long = "filter-out", value_name = "FILTER", value_parser = topic::parse_filter)]
    pub filter_out: Vec<String>,

    /// MQTT 5: do not receive what this client publishes itself
    #[arg(long, help_heading = "MQTT 5")]
    pub no_local: bool,

    /// MQTT 5: keep the retain flag of live messages as published
    #[arg(long, help_heading = "MQTT 5")]
    pub retain_as_published: bool,

    /// MQTT 5: when to receive retained messages: 0 or always (at every subscribe), 1 or new
    /// (only for a new subscription), 2 or never
    #[arg(long, value_name = "WHEN", value_parser = parse_retain_handling, help_heading = "MQTT 5")]
    pub retain_handling: Option<RetainHandling>,

    /// MQTT 5 user property on the SUBSCRIBE, KEY=VALUE (repeatable)
    #[arg(long = "user-property", value_name = "KEY=VALUE", value_parser = parse_pair, help_heading = "MQTT 5")]
    pub user_property: Vec<(String, String)>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct UnsubArgs {
    /// Topic filter to remove from the session (repeatable)
    #[arg(short = 't', long, value_name = "FILTER", required = true, value_parser = topic::parse_filter)]
    pub topic: Vec<String>,

    /// MQTT 5 user property on the UNSUBSCRIBE, KEY=VALUE (repeatable)
    #[arg(long = "user-property", value_name = "KEY=VALUE", value_parser = parse_pair, help_heading = "MQTT 5")]
    pub user_property: Vec<(String, String)>,

    /// Give up (exit 6) when an UNSUBACK has not come DURATION after its UNSUBSCRIBE
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub timeout: Duration,

    #[command(flatten)]
    pub conn: ConnArgs,
}

const CHECK_EXAMPLES: &str = "\
Examples:
  mqttcli check -h broker.emqx.io
  mqttcli check -L mqtts://broker.example -u ci --password-file pw.txt --json | jq .latency_ms
  mqttcli check --profile staging -V 5 -q 2 -C 10 --probe";

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Messages to send and receive back
    #[arg(short = 'C', long, value_name = "N", default_value_t = 3, value_parser = parse_count)]
    pub count: u32,

    /// Quality of service of the subscription and the messages: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "1", value_parser = parse_qos)]
    pub qos: Qos,

    /// How long each step may wait for the broker (SUBACK, acknowledgements, the messages
    /// coming back, UNSUBACK); connecting has --connect-timeout
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub timeout: Duration,

    /// Topic prefix, for brokers whose access rules allow only some topics; the check uses
    /// PREFIX/ and a random suffix
    #[arg(short = 't', long = "topic", value_name = "PREFIX", default_value = "mqttcli/check", value_parser = topic::parse_topic)]
    pub topic: String,

    /// Print one JSON object (ok, steps with timings, latency, error) instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also report what the broker allows: retained messages, wildcard and shared
    /// subscriptions, QoS 2, the largest payload it passes on (1 KiB to 1 MiB), and the
    /// limits an MQTT 5 broker states in its CONNACK
    #[arg(long)]
    pub probe: bool,

    #[command(flatten)]
    pub conn: ConnArgs,
}

fn parse_count(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a count from 1 to {MAX_COUNT}")),
    }
}

const MAX_COUNT: u32 = 10_000;

const RR_EXAMPLES: &str = "\
Examples:
  mqttcli rr -t services/time -m now
  mqttcli rr -t rpc/add -m '{\"a\":1,\"b\":2}' -e rpc/add/reply/me -W 5s
  mqttcli rr -L mqtts://broker.example/rpc/status -n --json | jq -r .payload";

#[derive(Args, Debug)]
pub struct RrArgs {
    /// Topic to send the request to (or the path of -L's URL)
    #[arg(short = 't', long, value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub topic: Option<String>,

    /// Topic the responder is asked to answer on [default: mqttcli/rr/ and a random suffix]
    #[arg(short = 'e', long = "response-topic", value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub response_topic: Option<String>,

    #[command(flatten)]
    pub payload: PayloadArgs,

    /// Quality of service of the request and of the response subscription: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: Qos,

    /// Exit with code 6 if no response came after DURATION [default: wait until interrupted]
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,

    /// Send -m exactly as given, with no placeholders filled in
    #[arg(long)]
    pub literal: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub message_properties: MessagePropertyArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  mqttcli completions bash > ~/.local/share/bash-completion/completions/mqttcli
  mqttcli completions zsh > \"${fpath[1]}/_mqttcli\"
  mqttcli completions fish > ~/.config/fish/completions/mqttcli.fish
  mqttcli completions powershell >> $PROFILE";

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand's page (mqttcli-SUB(1)) instead of mqttcli(1)
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from(std::iter::once("mqttcli").chain(args.iter().copied()))
    }

    #[test]
    fn property_values_are_grouped_by_occurrence() {
        let cli = parse(&[
            "pub",
            "-t",
            "a",
            "-m",
            "x",
            "-D",
            "PUBLISH",
            "content-type",
            "t",
            "-D",
            "PUBLISH",
            "user-property",
            "k",
            "v",
            "-q",
            "1",
        ])
        .unwrap();
        let conn = cli.command.conn().unwrap();
        assert_eq!(
            conn.property,
            [
                vec!["PUBLISH", "content-type", "t"],
                vec!["PUBLISH", "user-property", "k", "v"]
            ]
        );
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-D", "PUBLISH", "content-type"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dash_h_is_the_host_and_help_is_long() {
        let cli = parse(&["sub", "-h", "example.org", "-t", "a"]).unwrap();
        let Command::Sub(sub) = cli.command else {
            panic!()
        };
        assert_eq!(sub.conn.host.as_deref(), Some("example.org"));
        let err = parse(&["sub", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn values_are_checked() {
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-q", "3"]).is_err());
        assert!(parse(&["pub", "-t", "a/#", "-m", "x"]).is_err());
        assert!(parse(&["sub", "-t", "a/#/b"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-f", "y"]).is_err());
        assert!(parse(&["pub", "-t", "a"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-V", "6"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "--interval", "soon"]).is_err());
        assert!(parse(&["unsub", "-i", "x"]).is_err());
    }

    #[test]
    fn repeated_flags_take_the_last_value() {
        let cli = parse(&["pub", "-t", "a", "-m", "x", "-q", "1", "-q", "2"]).unwrap();
        let Command::Pub(p) = cli.command else {
            panic!()
        };
        assert_eq!(p.qos, Qos::ExactlyOnce);
    }

    #[test]
    fn replay_flags_are_checked() {
        assert_eq!(parse_speed("10"), Ok(10.0));
        assert_eq!(parse_speed("0.25"), Ok(0.25));
        for bad in ["0", "-1", "inf", "NaN", "fast", "10x"] {
            assert!(parse_speed(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_separator("\\t").as_deref(), Ok("\t"));
        assert_eq!(parse_separator(" :: ").as_deref(), Ok(" :: "));
        assert!(parse_separator("").is_err());
        assert!(parse(&["pub", "--jsonl", "-m", "x"]).is_err());
        assert!(parse(&["pub", "-l", "--jsonl"]).is_err());
        assert!(parse(&["pub", "-l", "--topic-sep", ":", "-t", "a"]).is_err());
        let cli = parse(&["pub", "--jsonl", "--speed", "4", "-q", "1"]).unwrap();
        let Command::Pub(p) = cli.command else {
            panic!()
        };
        assert!(p.jsonl && p.speed == Some(4.0) && p.topic.is_none());
    }

    #[test]
    fn counts_are_bounded() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("10001").is_err());
    }
}
