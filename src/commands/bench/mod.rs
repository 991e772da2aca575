//! `mqttcli bench`: many clients, each on a task of its own (dealt out among one thread per
//! CPU, `workers.rs`), opened at a paced rate; each returns its counts and histograms when it
//! ends, and they are added up into one summary (`summary.rs`). A progress line each second
//! comes from shared counters.
//!
//! `conn` opens connections and holds them (as `connection::Held`, where the settings allow:
//! a few KB each, where a `Session` takes 38); `pub` publishes payloads that start with a
//! header (`header.rs`) and measures publish-to-acknowledgement latency; `sub` reads that header
//! back for end-to-end latency, loss, duplicates and reordering (`streams.rs`).

mod clients;
mod files;
mod header;
mod histogram;
mod streams;
mod summary;
mod workers;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::connection::{sleep_until, Qos, Settings};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

pub use header::LEN as HEADER_LEN;
use summary::{Sink, Summary, Totals};

/// A topic or client id with `%i`, the client's index (its --client-offset added).
#[derive(Debug, Clone)]
pub struct Template(pub String);

impl Template {
    pub fn expand(&self, index: u64) -> String {
        self.0.replace("%i", &index.to_string())
    }

    pub fn has_index(&self) -> bool {
        self.0.contains("%i")
    }
}

pub struct Options {
    pub kind: Kind,
    pub clients: u64,
    /// Added to every client's index: runs on several machines use disjoint ranges.
    pub client_offset: u64,
    pub client_id: Template,
    /// New connections per second; None: all at once.
    pub connect_rate: Option<f64>,
    /// How long the run lasts (from the first connection); None: until done or interrupted.
    pub duration: Option<Duration>,
    pub json: bool,
    /// The progress line each second on stderr.
    pub progress: bool,
    /// `--ifaddr`: the local addresses the clients connect from, dealt out in turn.
    pub sources: Vec<std::net::IpAddr>,
    /// `--read-pause`: how long a busy worker lingers before it reads again (`workers.rs`).
    pub read_pause: Duration,
}

pub enum Kind {
    Conn,
    Pub(PubOptions),
    Sub(SubOptions),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Conn => "conn",
            Kind::Pub(_) => "pub",
            Kind::Sub(_) => "sub",
        }
    }
}

pub struct PubOptions {
    pub topic: Template,
    pub qos: Qos,
    pub retain: bool,
    /// Payload size in bytes, the header included (at least `HEADER_LEN`).
    pub size: usize,
    /// Messages per client; None: until --duration or interrupted.
    pub count: Option<u64>,
    /// Messages per second per client; None: as fast as the window allows.
    pub rate: Option<f64>,
    /// How long a client waits for its outstanding acknowledgements once it has sent all.
    pub ack_timeout: Duration,
    /// Whether a held publisher may have its reads batched (`Held::batch_reads`); not under
    /// `--read-pause 0`, which reads each packet as it arrives.
    pub batch_reads: bool,
}

pub struct SubOptions {
    pub topic: Template,
    pub qos: Qos,
    /// Messages per client after which it ends; None: until --duration or interrupted.
    pub count: Option<u64>,
}

/// What every client shares with the progress line.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    subscribed: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    /// Signalled by each subscriber once its SUBACK is in.
    ready: Notify,
}

/// What a client task gets: everything it needs, owned.
struct Client {
    index: u64,
    /// Shared: a client's own settings are made when it connects, and let go of once it has.
    connecting: Arc<Connecting>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
    interrupt: Interrupt,
    /// When the run ends: connecting gives up then too.
    end: Option<Instant>,
    sink: Sink,
}

/// What every client connects with.
struct Connecting {
    settings: Settings,
    /// For held connections, the broker's addresses, looked up once (`Held::addresses`).
    addrs: Option<Arc<[std::net::SocketAddr]>>,
    client_id: Template,
    sources: Vec<std::net::IpAddr>,
}

impl Connecting {
    /// Client `index`'s settings: its id, and its source address (`--ifaddr`, dealt in turn).
    fn settings(&self, index: u64) -> Settings {
        let mut s = self.settings.clone();
        s.client_id = self.client_id.expand(index);
        if !self.sources.is_empty() {
            s.source = Some(self.sources[(index % self.sources.len() as u64) as usize]);
        }
        s
    }
}

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    // A local relay (SOCKS5, --tls-server-name, MQTT 3.1, --ifaddr) holds two more sockets
    // per client; a held connection (`bench conn`) needs none.
    let relayed = settings.proxy.is_some()
        || settings.mqtt31
        || !opts.sources.is_empty()
        || settings
            .tls
            .as_ref()
            .is_some_and(|t| t.server_name.is_some());
    let fits = crate::connection::Held::fits(&settings);
    let held = match &opts.kind {
        Kind::Conn => fits,
        // QoS 2 stays with a Session, whose state machine does the PUBREC/PUBREL exchange.
        Kind::Pub(o) => fits && o.qos != Qos::ExactlyOnce,
        Kind::Sub(_) => false,
    };
    files::make_room(opts.clients, if relayed && !held { 3 } else { 1 })?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let name = opts.kind.name();
    let subscribing = matches!(opts.kind, Kind::Sub(_));
    // Each kind's task is spawned as its own future type: a task is allocated at the size of
    // its future's largest state, and a `match` over the kinds inside one future would give
    // every held connection the size of a publisher's state (7 KB).
    let job = match opts.kind {
        Kind::Conn if held => Job::Hold,
        Kind::Conn => Job::HoldSession,
        Kind::Pub(o) if held => Job::PubHeld(Arc::new(o)),
        Kind::Pub(o) => Job::Pub(Arc::new(o)),
        Kind::Sub(o) => Job::Sub(Arc::new(o)),
    };
    let started = Instant::now();
    let end = opts.duration.map(|d| started + d);
    let pace = opts.connect_rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let sink = Sink::default();
    let addrs = match &job {
        Job::Hold | Job::PubHeld(_) => crate::connection::Held::addresses(&settings).await?,
        _ => None,
    };
    let connecting = Arc::new(Connecting {
        settings,
        addrs,
        client_id: opts.client_id,
        sources: opts.sources,
    });
    let workers = workers::Workers::start(opts.read_pause)?;
    let mut set: JoinSet<Totals> = JoinSet::new();
    let mut totals = Totals::default();
    let mut next = 0u64;
    let mut next_at = started;
    let mut stopping = false;
    let mut interrupted = false;
    let mut announced = false;
    let mut progress = Progress::new(opts.progress, name);
    loop {
        while next < opts.clients && !stopping && Instant::now() >= next_at {
            let client = Client {
                index: opts.client_offset + next,
                connecting: connecting.clone(),
                counters: counters.clone(),
                stop: stop_rx.clone(),
                interrupt: interrupt.clone(),
                end,
                sink: sink.clone(),
            };
            // Each client hands the samples it still holds to the run's histograms as it ends.
            // Written out for each: a future passed to an `async fn` is stored twice.
            match &job {
                Job::Hold => workers.spawn(&mut set, next, async move {
                    let mut t = clients::hold(client).await;
                    t.flush();
                    t
                }),
                Job::HoldSession => workers.spawn(&mut set, next, async move {
                    let mut t = clients::hold_session(client).await;
                    t.flush();
                    t
                }),
                Job::Pub(o) => {
                    let o = o.clone();
                    workers.spawn(&mut set, next, async move {
                        let mut t = clients::publish(client, &o).await;
                        t.flush();
                        t
                    })
                }
                Job::PubHeld(o) => {
                    let o = o.clone();
                    workers.spawn(&mut set, next, async move {
                        let mut t = clients::publish_held(client, &o).await;
                        t.flush();
                        t
                    })
                }
                Job::Sub(o) => {
                    let o = o.clone();
                    workers.spawn(&mut set, next, async move {
                        let mut t = clients::subscribe(client, &o).await;
                        t.flush();
                        t
                    })
                }
            };
            next += 1;
            if let Some(p) = pace {
                next_at += p;
            }
        }
        if (next == opts.clients || stopping) && set.is_empty() {
            break;
        }
        let spawning = next < opts.clients && !stopping;
        tokio::select! {
            done = set.join_next(), if !set.is_empty() => match done {
                Some(Ok(t)) => totals.add(t),
                Some(Err(e)) => return Err(fail(Exit::Other, format!("a bench client failed: {e}"))),
                None => {}
            },
            _ = tokio::time::sleep_until(next_at), if spawning => {}
            _ = counters.ready.notified(), if !announced => {
                let n = counters.subscribed.load(Relaxed);
                if subscribing && n == opts.clients {
                    announced = true;
                    // Scripts (and the tests) start their publishers on this line.
                    eprintln!("mqttcli: bench sub: all {n} clients subscribed");
                }
            }
            _ = progress.tick() => progress.show(&counters, opts.clients),
            _ = interrupt.wait(), if !interrupted => {
                interrupted = true;
                stopping = true;
                let _ = stop_tx.send(true);
            }
            _ = sleep_until(end), if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    workers.stop();
    if next < opts.clients && !interrupted {
        // Said, not failed: the run was set up to end before its last clients were due.
        let reason =
            "not started: --duration ended first (raise --connect-rate, or lengthen --duration)";
        *totals.errors.entry(reason.to_string()).or_default() += opts.clients - next;
    }
    let elapsed = started.elapsed().as_secs_f64();
    totals.latency = std::mem::take(&mut *sink.lock().unwrap_or_else(|e| e.into_inner()));
    let exit = totals.exit;
    let summary = Summary::new(name, opts.clients, started, elapsed, totals);
    print(&summary, opts.json)?;
    Ok(if interrupted {
        Exit::Interrupted
    } else {
        exit.unwrap_or(Exit::Success)
    })
}

/// What each client of a run does.
enum Job {
    /// `conn`, as a held connection (`connection::Held`).
    Hold,
    /// `conn` where the settings need a Session.
    HoldSession,
    Pub(Arc<PubOptions>),
    /// `pub` at QoS 0 or 1 on held connections (`clients::publish_held`).
    PubHeld(Arc<PubOptions>),
    Sub(Arc<SubOptions>),
}

/// `bench merge FILE...`: the summaries of runs side by side, as one.
pub fn merge(files: &[std::path::PathBuf], json: bool) -> Result<Exit> {
    let mut merged: Option<Summary> = None;
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::exit::usage(format!(
                "cannot read {name}: {e}: give the files written by bench --json"
            ))
        })?;
        let s = Summary::parse(&text, &name)?;
        merged = Some(match merged {
            None => s,
            Some(m) => m.merge(s, &name)?,
        });
    }
    let Some(summary) = merged else {
        return Err(crate::exit::usage(
            "bench merge needs the --json summaries of the runs: bench merge a.json b.json",
        ));
    };
    print(&summary, json)?;
    Ok(Exit::Success)
}

fn print(summary: &Summary, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, summary)?;
        writeln!(out)?;
    } else {
        out.write_all(summary.table().as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// One line a second on stderr: a plain line, not redrawn, so that logs keep the history.
struct Progress {
    ticks: Option<tokio::time::Interval>,
    started: Instant,
    kind: &'static str,
    last: [u64; 3],
}

impl Progress {
    fn new(on: bool, kind: &'static str) -> Progress {
        let ticks = on.then(|| {
            let first = Instant::now() + Duration::from_secs(1);
            let mut t = tokio::time::interval_at(first, Duration::from_secs(1));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            t
        });
        Progress {
            ticks,
            started: Instant::now(),
            kind,
            last: [0; 3],
        }
    }

    async fn tick(&mut self) {
        match self.ticks.as_mut() {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    fn show(&mut self, c: &Counters, clients: u64) {
        let now = [
            c.sent.load(Relaxed),
            c.acked.load(Relaxed),
            c.received.load(Relaxed),
        ];
        let d = |i: usize| now[i] - self.last[i];
        let mut line = format!(
            "mqttcli: bench {}: {:.0} s, {}/{clients} connected",
            self.kind,
            self.started.elapsed().as_secs_f64(),
            c.connected.load(Relaxed),
        );
        let failed = c.failed.load(Relaxed);
        if failed > 0 {
            line.push_str(&format!(", {failed} failed to connect"));
        }
        match self.kind {
            "pub" => line.push_str(&format!(
                ", {} sent ({}/s), {} acked ({}/s), {} in flight",
                now[0],
                d(0),
                now[1],
                d(1),
                now[0] - now[1]
            )),
            "sub" => line.push_str(&format!(", {} received ({}/s)", now[2], d(2))),
            _ => {}
        }
        line.push_str(&format!(", {} errors", c.errors.load(Relaxed)));
        self.last = now;
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_the_index() {
        let t = Template("bench/%i/data".into());
        assert_eq!(t.expand(42), "bench/42/data");
        assert!(t.has_index());
        let plain = Template("bench/all".into());
        assert_eq!(plain.expand(3), "bench/all");
        assert!(!plain.has_index());
        assert_eq!(Template("c%i-%i".into()).expand(7), "c7-7");
    }
}
