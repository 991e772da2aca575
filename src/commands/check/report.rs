//! What `check` shows: the model the steps and the probe fill in, and its two renderings, a
//! table and one line of JSON. Rendering writes to any `Write` so that tests can read it back.

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Value};

use super::probe::PAYLOAD_SIZES;
use super::Stop;
use crate::connection::{BrokerLimits, Qos};
use crate::exit::{exit_for, Exit};

/// Everything the output shows, filled in as the steps run.
pub(super) struct Report {
    pub(super) broker: String,
    pub(super) transport: &'static str,
    pub(super) protocol: &'static str,
    pub(super) client_id: String,
    pub(super) topic: String,
    pub(super) qos: Qos,
    pub(super) count: u32,
    pub(super) steps: Vec<StepResult>,
    pub(super) latencies: Vec<Duration>,
    pub(super) probe: Option<Probe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Connect,
    Subscribe,
    Publish,
    Receive,
    Unsubscribe,
    Disconnect,
}

impl Step {
    pub(super) fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Subscribe => "subscribe",
            Step::Publish => "publish",
            Step::Receive => "receive",
            Step::Unsubscribe => "unsubscribe",
            Step::Disconnect => "disconnect",
        }
    }
}

pub(super) struct StepResult {
    pub(super) step: Step,
    pub(super) ok: bool,
    pub(super) time: Duration,
    pub(super) detail: String,
}

/// What `--probe` found.
pub(super) struct Probe {
    pub(super) findings: Vec<Finding>,
    /// The limits an MQTT 5 broker announced in CONNACK; None under 3.1.1.
    pub(super) limits: Option<BrokerLimits>,
}

/// One thing the probe asked the broker, and its answer.
pub(super) struct Finding {
    pub(super) key: &'static str,
    pub(super) label: &'static str,
    /// Some(true/false) for yes/no questions, None for the payload size (see `value`).
    pub(super) allowed: Option<bool>,
    /// For the largest payload: bytes that came back.
    pub(super) value: Option<u64>,
    pub(super) note: String,
}

impl Report {
    /// The table for people: a header, a line per step that ran, then the round trip and what
    /// the probe found.
    pub(super) fn write_text(
        &self,
        outcome: &Result<(), Stop>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        writeln!(
            out,
            "checking {} ({}, MQTT {}) on topic {} with {} message{} at QoS {}",
            self.broker,
            self.transport,
            self.protocol,
            self.topic,
            self.count,
            if self.count == 1 { "" } else { "s" },
            self.qos
        )?;
        for s in &self.steps {
            write!(
                out,
                "{:<12} {:<6} {:>10}",
                s.step.name(),
                if s.ok { "ok" } else { "FAILED" },
                ms_text(s.time)
            )?;
            if !s.detail.is_empty() {
                write!(out, "  {}", s.detail)?;
            }
            writeln!(out)?;
        }
        if matches!(outcome, Err(Stop::Interrupted)) {
            writeln!(out, "interrupted")?;
        }
        if let Some((min, median, max)) = stats(&self.latencies) {
            writeln!(
                out,
                "round trip   min {}, median {}, max {}",
                ms_text(min),
                ms_text(median),
                ms_text(max)
            )?;
        }
        if let Some(probe) = &self.probe {
            writeln!(out, "probe")?;
            for f in &probe.findings {
                let answer = match (f.allowed, f.value) {
                    (Some(true), _) => "yes".to_string(),
                    (Some(false), _) => "no".to_string(),
                    (None, Some(v)) => bytes_text(v),
                    (None, None) => "none".to_string(),
                };
                write!(out, "  {:<24} {answer}", f.label)?;
                if !f.note.is_empty() {
                    write!(out, " ({})", f.note)?;
                }
                writeln!(out)?;
            }
            let limits = match &probe.limits {
                None => "none (MQTT 3.1.1 has no CONNACK properties)".to_string(),
                Some(l) => {
                    let words: Vec<String> = limit_entries(l).into_iter().map(|e| e.1).collect();
                    if words.is_empty() {
                        "none stated".to_string()
                    } else {
                        words.join(", ")
                    }
                }
            };
            writeln!(out, "  {:<24} {limits}", "CONNACK limits")?;
        }
        Ok(())
    }

    /// The same for scripts: one line, one JSON object.
    pub(super) fn write_json(
        &self,
        outcome: &Result<(), Stop>,
        out: &mut impl Write,
    ) -> io::Result<()> {
        writeln!(out, "{}", self.json(outcome))
    }

    fn json(&self, outcome: &Result<(), Stop>) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut v = json!({"step": s.step.name(), "ok": s.ok, "ms": ms(s.time)});
                if !s.detail.is_empty() {
                    v["detail"] = json!(s.detail);
                }
                v
            })
            .collect();
        let latency = stats(&self.latencies).map(|(min, median, max)| {
            json!({
                "min": ms(min),
                "median": ms(median),
                "max": ms(max),
                "samples": self.latencies.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            })
        });
        let error = match outcome {
            Ok(()) => Value::Null,
            Err(Stop::Failed(f)) => json!({
                "step": f.step.name(),
                "exit_code": exit_for(&f.error).code(),
                "message": format!("{:#}", f.error),
            }),
            Err(Stop::Interrupted) => json!({
                "step": self.steps.last().map_or("connect", |s| s.step.name()),
                "exit_code": Exit::Interrupted.code(),
                "message": "interrupted",
            }),
        };
        let mut v = json!({
            "ok": outcome.is_ok(),
            "broker": self.broker,
            "transport": self.transport,
            "protocol": self.protocol,
            "client_id": self.client_id,
            "topic": self.topic,
            "qos": self.qos.number(),
            "count": self.count,
            "steps": steps,
            "latency_ms": latency,
            "error": error,
        });
        if let Some(probe) = &self.probe {
            v["probe"] = probe.json();
        }
        v
    }
}

impl Probe {
    fn json(&self) -> Value {
        let mut p = serde_json::Map::new();
        for f in &self.findings {
            let mut entry = json!({});
            if let Some(a) = f.allowed {
                entry["allowed"] = json!(a);
            }
            if f.key == "largest_payload" {
                entry["bytes"] = json!(f.value);
                entry["tried_up_to"] = json!(1u64 << PAYLOAD_SIZES.end());
            }
            if !f.note.is_empty() {
                entry["note"] = json!(f.note);
            }
            p.insert(f.key.to_string(), entry);
        }
        let limits = self.limits.as_ref().map(|l| {
            Value::Object(
                limit_entries(l)
                    .into_iter()
                    .map(|(k, _, v)| (k.to_string(), v))
                    .collect(),
            )
        });
        p.insert("connack_limits".to_string(), json!(limits));
        Value::Object(p)
    }
}

/// The CONNACK limits the broker stated, as (JSON key, words for the table, JSON value). A
/// limit it left out is not listed: MQTT 5 reads that as no limit, or available.
fn limit_entries(l: &BrokerLimits) -> Vec<(&'static str, String, Value)> {
    let number = |n: Option<u32>, key: &'static str, words: &dyn Fn(u32) -> String| {
        n.map(|n| (key, words(n), json!(n)))
    };
    let flag = |b: Option<bool>, key: &'static str, label: &str| {
        b.map(|b| {
            (
                key,
                format!("{label} {}", if b { "yes" } else { "no" }),
                json!(b),
            )
        })
    };
    [
        number(l.receive_maximum.map(u32::from), "receive_maximum", &|n| {
            format!("receive maximum {n}")
        }),
        number(l.maximum_packet_size, "maximum_packet_size", &|n| {
            format!("maximum packet size {}", bytes_text(n.into()))
        }),
        number(l.maximum_qos.map(u32::from), "maximum_qos", &|n| {
            format!("maximum QoS {n}")
        }),
        flag(l.retain_available, "retain_available", "retain available"),
        flag(
            l.wildcard_subscriptions,
            "wildcard_subscriptions",
            "wildcard subscriptions",
        ),
        flag(
            l.shared_subscriptions,
            "shared_subscriptions",
            "shared subscriptions",
        ),
        flag(
            l.subscription_identifiers,
            "subscription_identifiers",
            "subscription identifiers",
        ),
        number(
            l.topic_alias_maximum.map(u32::from),
            "topic_alias_maximum",
            &|n| format!("topic alias maximum {n}"),
        ),
        number(
            l.server_keep_alive.map(u32::from),
            "server_keep_alive",
            &|n| format!("server keepalive {n} s"),
        ),
        number(l.session_expiry_interval, "session_expiry_interval", &|n| {
            format!("session expiry {n} s")
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn ms_text(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

pub(super) fn bytes_text(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// (min, median, max)
fn stats(samples: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let n = s.len();
    let median = match n {
        0 => return None,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    };
    Some((s[0], median, s[n - 1]))
}

#[cfg(test)]
mod tests;
