//! `mqttcli check`: an end-to-end test of a broker for scripts and CI. Connect, subscribe to a
//! topic no one else uses, publish N messages, receive them back (payloads and order checked),
//! unsubscribe, disconnect; report each step's time and the round-trip latency. A failure names
//! its step and exits with that failure's code (3 unreachable, 4 refused CONNACK, 5 refused
//! subscribe/publish, 6 timeout, 7 TLS).
//!
//! `--probe` then asks, on a second connection, what the broker allows: retained messages,
//! wildcard and shared subscriptions, QoS 2, the largest payload it passes on, and the limits
//! an MQTT 5 broker states in its CONNACK.

mod exchange;
mod probe;
mod report;
mod steps;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use rand::distr::{Alphanumeric, SampleString};

use crate::connection::{Qos, Settings};
use crate::exit::Exit;
use crate::signals::Interrupt;
use probe::probe;
use report::{Report, Step};
use steps::check;

pub struct Options {
    /// Messages to send and receive back.
    pub count: u32,
    /// Of the subscription and the messages.
    pub qos: Qos,
    /// How long each step may wait for the broker.
    pub timeout: Duration,
    /// The check's topic is PREFIX/ and a random suffix.
    pub topic_prefix: String,
    pub json: bool,
    pub probe: bool,
}

/// A step that went wrong, with the error that carries its exit code.
struct Failed {
    step: Step,
    error: anyhow::Error,
}

/// Why the check ended before its last step. An interruption is no failure: the report says
/// so, the exit code is 130, and the probe does not run.
enum Stop {
    Interrupted,
    Failed(Failed),
}

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let topic = format!(
        "{}/{}",
        opts.topic_prefix.trim_end_matches('/'),
        Alphanumeric.sample_string(&mut rand::rng(), 16)
    );
    let mut report = Report {
        broker: format!("{}:{}", settings.host, settings.port),
        transport: match (settings.tls.is_some(), settings.websocket.is_some()) {
            (false, false) => "tcp",
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
        },
        // -V 31 is 3.1.1 on rumqttc's side, rewritten by the relay.
        protocol: if settings.mqtt31 {
            "3.1"
        } else {
            settings.protocol.version()
        },
        client_id: settings.client_id.clone(),
        topic,
        qos: opts.qos,
        count: opts.count,
        steps: Vec::new(),
        latencies: Vec::new(),
        probe: None,
    };

    let outcome = check(&opts, &settings, &mut report, &mut interrupt).await;
    if outcome.is_ok() && opts.probe {
        report.probe = Some(probe(&opts, &settings, &report.topic, &mut interrupt).await);
    }

    let mut out = std::io::stdout().lock();
    if opts.json {
        report.write_json(&outcome, &mut out)?;
    } else {
        report.write_text(&outcome, &mut out)?;
    }
    out.flush()?;
    match outcome {
        Ok(()) => Ok(Exit::Success),
        Err(Stop::Interrupted) => Ok(Exit::Interrupted),
        Err(Stop::Failed(f)) => Err(f
            .error
            .context(format!("check failed at the {} step", f.step.name()))),
    }
}
