//! What a run adds up to: the counts, the errors by reason, the latency histograms; printed as
//! a table or as `--json` (schema in the README's "Load testing"), and merged across runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::histogram::{Latency, Stats};
use crate::exit::{usage, Exit};

/// Bumped when a field changes meaning; `bench merge` refuses other versions.
pub const SCHEMA: u32 = 1;

/// The names of the histograms, as they appear in the table and in `--json`.
pub const CONNECT: &str = "connect";
/// `bench conn`'s steps of connecting, where they can be told apart (`connection::Held`).
pub const TCP: &str = "tcp";
pub const TLS: &str = "tls";
pub const CONNACK: &str = "connack";
pub const PUBLISH: &str = "publish";
pub const END_TO_END: &str = "end_to_end";

/// The run's histograms, which every client adds its samples to.
pub type Sink = Arc<Mutex<BTreeMap<&'static str, Latency>>>;

/// Samples a client holds before adding them to the sink under its lock.
const BATCH: usize = 256;

/// The counts of one client, or of many added up.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub connected: u64,
    pub connect_failed: u64,
    pub sent: u64,
    pub acked: u64,
    pub unacknowledged: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub without_header: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: BTreeMap<&'static str, Latency>,
    /// The exit code the first failure calls for (a refused connection, a lost message).
    pub exit: Option<Exit>,
    /// When the last connection was made, and the first and last message sent or received:
    /// rates count over these spans, not over ramp-up and draining.
    pub last_connect: Option<Instant>,
    pub first_message: Option<Instant>,
    pub last_message: Option<Instant>,
    /// A client's latency samples on their way to the run's histograms (`sink`): a histogram
    /// of its own would cost each client about 190 KB, and a run may hold 10 000 clients.
    samples: Vec<(&'static str, u64)>,
    sink: Option<Sink>,
}

impl Totals {
    pub fn error(&mut self, reason: impl Into<String>) {
        *self.errors.entry(reason.into()).or_default() += 1;
    }

    /// A client's totals, its latencies going to `sink`.
    pub fn for_client(sink: Sink) -> Totals {
        Totals {
            sink: Some(sink),
            ..Totals::default()
        }
    }

    pub fn record(&mut self, name: &'static str, d: Duration) {
        self.record_us(name, d.as_micros() as u64);
    }

    pub fn record_us(&mut self, name: &'static str, us: u64) {
        if self.sink.is_none() {
            self.latency(name).record_us(us);
            return;
        }
        self.samples.push((name, us));
        if self.samples.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands the samples held to the sink; called once more when the client ends.
    pub fn flush(&mut self) {
        let Some(sink) = &self.sink else {
            return;
        };
        if self.samples.is_empty() {
            return;
        }
        // A poisoned lock means another client panicked; its histograms are still sound.
        let mut hists = sink.lock().unwrap_or_else(|e| e.into_inner());
        for (name, us) in self.samples.drain(..) {
            hists.entry(name).or_default().record_us(us);
        }
    }

    pub fn latency(&mut self, name: &'static str) -> &mut Latency {
        self.latency.entry(name).or_default()
    }

    pub fn add(&mut self, o: Totals) {
        self.exit = self.exit.or(o.exit);
        self.last_connect = self.last_connect.max(o.last_connect);
        self.first_message = match (self.first_message, o.first_message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_message = self.last_message.max(o.last_message);
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.sent += o.sent;
        self.acked += o.acked;
        self.unacknowledged += o.unacknowledged;
        self.received += o.received;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.without_header += o.without_header;
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        for (k, l) in o.latency {
            self.latency(k).add(&l);
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub connects_per_s: f64,
    pub sent_per_s: f64,
    pub acked_per_s: f64,
    pub received_per_s: f64,
}

/// `--json`'s object. Every field is always present, zero where it does not apply to the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mqttcli_bench: u32,
    pub kind: String,
    /// How many runs were merged into this one (1 for a run).
    pub runs: u64,
    pub clients: u64,
    pub connected: u64,
    pub connect_failed: u64,
    pub elapsed_s: f64,
    pub sent: u64,
    pub acked: u64,
    pub unacknowledged: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub without_header: u64,
    pub errors: BTreeMap<String, u64>,
    pub rates: Rates,
    pub latency_ms: BTreeMap<String, Stats>,
    /// HdrHistogram V2 + DEFLATE, base64, values in microseconds.
    pub histograms: BTreeMap<String, String>,
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl Summary {
    /// `started`: when the run began; `elapsed_s`: how long it took in all.
    pub fn new(kind: &str, clients: u64, started: Instant, elapsed_s: f64, t: Totals) -> Summary {
        // A span too short to divide by (one message) falls back to the whole run.
        let span = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
            (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
            _ => elapsed_s,
        };
        let connecting_s = span(Some(started), t.last_connect);
        let traffic_s = span(t.first_message, t.last_message);
        Summary {
            mqttcli_bench: SCHEMA,
            kind: kind.to_string(),
            runs: 1,
            clients,
            connected: t.connected,
            connect_failed: t.connect_failed,
            elapsed_s: (elapsed_s * 1000.0).round() / 1000.0,
            sent: t.sent,
            acked: t.acked,
            unacknowledged: t.unacknowledged,
            received: t.received,
            lost: t.lost,
            duplicates: t.duplicates,
            reordered: t.reordered,
            without_header: t.without_header,
            errors: t.errors,
            rates: Rates {
                connects_per_s: per_s(t.connected, connecting_s),
                sent_per_s: per_s(t.sent, traffic_s),
                acked_per_s: per_s(t.acked, traffic_s),
                received_per_s: per_s(t.received, traffic_s),
            },
            latency_ms: t
                .latency
                .iter()
                .map(|(k, l)| (k.to_string(), l.stats()))
                .collect(),
            histograms: t
                .latency
                .iter()
                .map(|(k, l)| (k.to_string(), l.encode()))
                .collect(),
        }
    }

    /// Reads one `--json` summary; `name` is for the error messages.
    pub fn parse(text: &str, name: &str) -> Result<Summary> {
        let s: Summary = serde_json::from_str(text).map_err(|e| {
            usage(format!(
                "{name} is not a `bench --json` summary ({e}): give files written by mqttcli bench ... --json"
            ))
        })?;
        if s.mqttcli_bench != SCHEMA {
            return Err(usage(format!(
                "{name} is a bench summary of schema {}, this mqttcli reads {SCHEMA}: merge with the mqttcli that wrote it",
                s.mqttcli_bench
            )));
        }
        Ok(s)
    }

    /// Runs side by side (one per machine): counts, errors, rates and histograms add up; the
    /// elapsed time is the longest run's.
    pub fn merge(mut self, o: Summary, name: &str) -> Result<Summary> {
        if self.kind != o.kind {
            return Err(usage(format!(
                "{name} is a bench {} summary, the others are bench {}: merge runs of one kind",
                o.kind, self.kind
            )));
        }
        self.runs += o.runs;
        self.clients += o.clients;
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.elapsed_s = self.elapsed_s.max(o.elapsed_s);
        self.sent += o.sent;
        self.acked += o.acked;
        self.unacknowledged += o.unacknowledged;
        self.received += o.received;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.without_header += o.without_header;
        for (k, n) in o.errors {
            *self.errors.entry(k).or_default() += n;
        }
        let r = &mut self.rates;
        r.connects_per_s = round1(r.connects_per_s + o.rates.connects_per_s);
        r.sent_per_s = round1(r.sent_per_s + o.rates.sent_per_s);
        r.acked_per_s = round1(r.acked_per_s + o.rates.acked_per_s);
        r.received_per_s = round1(r.received_per_s + o.rates.received_per_s);
        let decode = |text: &str| Latency::decode(text).map_err(|e| usage(format!("{name}: {e}")));
        let mut hist = BTreeMap::new();
        for (k, text) in self.histograms.iter() {
            hist.insert(k.clone(), decode(text)?);
        }
        for (k, text) in o.histograms.iter() {
            hist.entry(k.clone()).or_default().add(&decode(text)?);
        }
        self.latency_ms = hist.iter().map(|(k, l)| (k.clone(), l.stats())).collect();
        self.histograms = hist.iter().map(|(k, l)| (k.clone(), l.encode())).collect();
        Ok(self)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bench {}: {} clients, {} connected, {} failed to connect, {:.2} s{}",
            self.kind,
            self.clients,
            self.connected,
            self.connect_failed,
            self.elapsed_s,
            if self.runs > 1 {
                format!(" ({} runs merged)", self.runs)
            } else {
                String::new()
            }
        );
        let mut rows: Vec<(&str, u64, Option<f64>)> = Vec::new();
        match self.kind.as_str() {
            "conn" => rows.push(("connected", self.connected, Some(self.rates.connects_per_s))),
            "pub" => {
                rows.push(("sent", self.sent, Some(self.rates.sent_per_s)));
                rows.push(("acked", self.acked, Some(self.rates.acked_per_s)));
                rows.push(("unacknowledged", self.unacknowledged, None));
            }
            _ => {
                rows.push(("received", self.received, Some(self.rates.received_per_s)));
                rows.push(("lost", self.lost, None));
                rows.push(("duplicates", self.duplicates, None));
                rows.push(("reordered", self.reordered, None));
                rows.push(("without header", self.without_header, None));
            }
        }
        let _ = writeln!(out, "  {:<16}{:>12}{:>14}", "", "total", "per second");
        for (name, n, rate) in rows {
            let rate = rate.map_or(String::new(), |r| format!("{r:.1}"));
            let _ = writeln!(out, "  {name:<16}{n:>12}{rate:>14}");
        }
        let _ = writeln!(
            out,
            "  {:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency (ms)", "count", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, s) in &self.latency_ms {
            let _ = writeln!(
                out,
                "  {:<16}{:>10}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
                name.replace('_', " "),
                s.count,
                s.min,
                s.mean,
                s.p50,
                s.p90,
                s.p99,
                s.p99_9,
                s.max
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "  errors");
            for (reason, n) in &self.errors {
                let _ = writeln!(out, "  {n:>8}  {reason}");
            }
        }
        out
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sent: u64, latencies: &[u64], errors: &[&str]) -> Summary {
        let mut t = Totals {
            connected: 2,
            sent,
            acked: sent,
            ..Totals::default()
        };
        for &us in latencies {
            t.latency(PUBLISH).record_us(us);
        }
        for e in errors {
            t.error(*e);
        }
        Summary::new("pub", 2, Instant::now(), 2.0, t)
    }

    #[test]
    fn clients_add_their_samples_to_the_sink() {
        let sink = Sink::default();
        let mut a = Totals::for_client(sink.clone());
        let mut b = Totals::for_client(sink.clone());
        for us in 0..(BATCH as u64 + 10) {
            a.record_us(PUBLISH, us + 1);
        }
        b.record(CONNECT, Duration::from_millis(2));
        // Held until a batch is full, then all of it.
        assert_eq!(sink.lock().unwrap()[PUBLISH].stats().count, BATCH as u64);
        a.flush();
        b.flush();
        let hists = sink.lock().unwrap();
        assert_eq!(hists[PUBLISH].stats().count, BATCH as u64 + 10);
        assert_eq!(hists[CONNECT].stats().p50, 2.0);
        assert!(
            a.latency.is_empty(),
            "a client keeps no histogram of its own"
        );
    }

    #[test]
    fn merge_adds_counts_rates_errors_and_histograms() {
        let a = run(100, &[100, 200], &["lost"]);
        let b = run(300, &[300, 400, 500], &["lost", "refused"]);
        let m = a.clone().merge(b.clone(), "b.json").unwrap();
        assert_eq!((m.runs, m.clients, m.sent, m.acked), (2, 4, 400, 400));
        assert_eq!(m.rates.sent_per_s, a.rates.sent_per_s + b.rates.sent_per_s);
        assert_eq!(m.errors["lost"], 2);
        assert_eq!(m.errors["refused"], 1);
        assert_eq!(m.latency_ms[PUBLISH].count, 5);
        assert_eq!(m.latency_ms[PUBLISH].p50, 0.3);
        assert_eq!(m.latency_ms[PUBLISH].max, 0.5);
        assert_eq!(m.elapsed_s, 2.0);
    }

    #[test]
    fn json_round_trips_and_kinds_must_match() {
        let a = run(10, &[100], &[]);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(Summary::parse(&text, "a.json").unwrap(), a);
        let mut other = a.clone();
        other.kind = "sub".into();
        let err = a.clone().merge(other, "b.json").unwrap_err().to_string();
        assert!(err.contains("merge runs of one kind"), "{err}");
        let err = Summary::parse("{}", "x.json").unwrap_err().to_string();
        assert!(
            err.starts_with("x.json is not a `bench --json` summary"),
            "{err}"
        );
        let mut future = serde_json::to_value(&a).unwrap();
        future["mqttcli_bench"] = 2.into();
        let err = Summary::parse(&future.to_string(), "f.json").unwrap_err();
        assert!(err.to_string().contains("schema 2"), "{err}");
    }

    #[test]
    fn the_table_shows_the_kinds_rows() {
        let t = run(10, &[1500], &["connection lost"]).table();
        assert!(t.contains("bench pub: 2 clients, 2 connected"), "{t}");
        assert!(t.contains("  sent  "), "{t}");
        assert!(t.contains("publish"), "{t}");
        assert!(t.contains("connection lost"), "{t}");
        assert!(!t.contains("duplicates"), "{t}");
    }
}
