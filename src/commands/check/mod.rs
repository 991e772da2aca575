//! `mqttcli check`: an end-to-end test of a broker for scripts and CI. Connect, subscribe to a
//! topic no one else uses, publish N messages, receive them back (payloads and order checked),
//! unsubscribe, disconnect; report each step's time and the round-trip latency. A failure names
//! its step and exits with that failure's code (3 unreachable, 4 refused CONNACK, 5 refused
//! subscribe/publish, 6 timeout, 7 TLS).
//!
//! `--probe` then asks, on a second connection, what the broker allows: retained messages,
//! wildcard and shared subscriptions, QoS 2, the largest payload it passes on, and the limits
//! an MQTT 5 broker states in its CONNACK.

mod probe;
mod report;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use crate::connection::{Event, Qos, Session, Settings, Wait};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;
use probe::probe;
use report::{Report, Step, StepResult};

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

/// Why an exchange with the broker gave no answer. Kept apart from the error so that a
/// signal never reads as a broker problem, in a step or in a probe finding.
enum Halt {
    Interrupted,
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Halt {
    fn from(error: anyhow::Error) -> Self {
        Halt::Error(error)
    }
}

impl Halt {
    /// What the check ends with when this stopped `step`; a failure is recorded in the report.
    fn at(self, report: &mut Report, step: Step, started: Instant) -> Stop {
        match self {
            Halt::Interrupted => Stop::Interrupted,
            Halt::Error(error) => failed(report, step, started, error),
        }
    }
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
        protocol: settings.protocol.version(),
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

/// The check proper.
async fn check(
    opts: &Options,
    settings: &Settings,
    report: &mut Report,
    interrupt: &mut Interrupt,
) -> Result<(), Stop> {
    let topic = report.topic.clone();
    let count = opts.count as usize;
    let wait = opts.timeout;

    // connect
    let started = Instant::now();
    let opened = Session::open(settings, interrupt, None)
        .await
        .map_err(|e| failed(report, Step::Connect, started, e))?;
    let Wait::Ready(mut link) = opened else {
        return Err(Stop::Interrupted);
    };
    report.steps.push(ok(Step::Connect, started, String::new()));

    // subscribe
    let started = Instant::now();
    let granted = subscribe(&mut link, &topic, opts.qos, wait, interrupt)
        .await
        .map_err(|halt| halt.at(report, Step::Subscribe, started))?;
    let detail = if granted < opts.qos {
        format!("granted QoS {granted} (asked for {})", opts.qos)
    } else {
        format!("granted QoS {granted}")
    };
    report.steps.push(ok(Step::Subscribe, started, detail));

    // publish and receive: all N queued back to back, then acks and messages as they come
    let nonce = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let payloads: Vec<Bytes> = (0..count)
        .map(|i| Bytes::from(format!("mqttcli check {nonce} {}/{count}", i + 1)))
        .collect();
    let started = Instant::now();
    let deadline = started + wait;
    let mut sent_at = Vec::with_capacity(count);
    for payload in &payloads {
        sent_at.push(Instant::now());
        link.publish(&topic, opts.qos, false, payload.clone())
            .await
            .map_err(|e| failed(report, Step::Publish, started, e))?;
    }
    let mut done = 0usize; // written (QoS 0) or acknowledged (QoS 1/2)
    let mut published_at = None;
    let mut received_at = None;
    let mut latencies = Vec::with_capacity(count);
    while published_at.is_none() || received_at.is_none() {
        let ev = match link.next(Some(deadline), interrupt).await {
            Ok(Wait::Ready(ev)) => ev,
            Ok(Wait::Interrupted) => return Err(Stop::Interrupted),
            Ok(Wait::Timeout) => {
                let (step, error) = if published_at.is_none() {
                    let what = if opts.qos == Qos::AtMostOnce {
                        "written"
                    } else {
                        "acknowledged"
                    };
                    (
                        Step::Publish,
                        fail(
                            Exit::Timeout,
                            format!(
                                "{done} of {count} messages {what} within {}: raise -W for a slow link",
                                crate::duration::display(wait)
                            ),
                        ),
                    )
                } else {
                    (
                        Step::Receive,
                        fail(
                            Exit::Timeout,
                            format!(
                                "{} of {count} messages came back within {} on '{topic}': the broker may not let this client read or write it (check its access rules, or choose a prefix with -t)",
                                latencies.len(),
                                crate::duration::display(wait)
                            ),
                        ),
                    )
                };
                return Err(failed(report, step, started, error));
            }
            Err(e) => {
                let step = if published_at.is_none() {
                    Step::Publish
                } else {
                    Step::Receive
                };
                return Err(failed(report, step, started, e));
            }
        };
        match ev {
            Event::Written { .. } if opts.qos == Qos::AtMostOnce => done += 1,
            Event::Acked { .. } if opts.qos > Qos::AtMostOnce => done += 1,
            Event::PublishRefused { reason, .. } => {
                let e = fail(
                    Exit::Rejected,
                    format!("the broker refused a publish to '{topic}': {reason}"),
                );
                return Err(failed(report, Step::Publish, started, e));
            }
            Event::Message(m) if m.topic == topic => {
                let i = latencies.len();
                if i >= count {
                    continue; // a duplicate (QoS 1) after all have arrived
                }
                if m.payload != payloads[i] {
                    let e = match payloads.iter().position(|p| *p == m.payload) {
                        Some(j) if j < i => fail(
                            Exit::Other,
                            format!(
                                "message {} arrived again after message {i}: a duplicate",
                                j + 1
                            ),
                        ),
                        Some(j) => fail(
                            Exit::Other,
                            format!(
                                "message {} arrived when message {} was due: out of order",
                                j + 1,
                                i + 1
                            ),
                        ),
                        None => fail(
                            Exit::Other,
                            format!(
                                "message {} came back altered: {} bytes instead of the {} sent",
                                i + 1,
                                m.payload.len(),
                                payloads[i].len()
                            ),
                        ),
                    };
                    return Err(failed(report, Step::Receive, started, e));
                }
                latencies.push(sent_at[i].elapsed());
            }
            _ => {}
        }
        if published_at.is_none() && done >= count {
            let now = Instant::now();
            published_at = Some(now);
            // Recorded now: if the messages then never come back, the report still shows
            // that the broker took them.
            let verb = if opts.qos == Qos::AtMostOnce {
                "written"
            } else {
                "acknowledged"
            };
            report.steps.push(StepResult {
                step: Step::Publish,
                ok: true,
                time: now - started,
                detail: format!("{count} {verb}"),
            });
        }
        if received_at.is_none() && latencies.len() >= count {
            received_at = Some(Instant::now());
        }
    }
    report.steps.push(StepResult {
        step: Step::Receive,
        ok: true,
        time: received_at.unwrap_or(started) - started,
        detail: format!("{count} of {count}, payloads and order as sent"),
    });
    report.latencies = latencies;

    // unsubscribe
    let started = Instant::now();
    unsubscribe(&mut link, &topic, wait, interrupt)
        .await
        .map_err(|halt| halt.at(report, Step::Unsubscribe, started))?;
    report
        .steps
        .push(ok(Step::Unsubscribe, started, String::new()));

    // disconnect
    let started = Instant::now();
    link.close()
        .await
        .map_err(|e| failed(report, Step::Disconnect, started, e))?;
    report
        .steps
        .push(ok(Step::Disconnect, started, String::new()));
    Ok(())
}

fn ok(step: Step, started: Instant, detail: String) -> StepResult {
    StepResult {
        step,
        ok: true,
        time: started.elapsed(),
        detail,
    }
}

/// Records the failed step in the report and returns what `check` ends with.
fn failed(report: &mut Report, step: Step, started: Instant, error: anyhow::Error) -> Stop {
    report.steps.push(StepResult {
        step,
        ok: false,
        time: started.elapsed(),
        detail: String::new(),
    });
    Stop::Failed(Failed { step, error })
}

/// Subscribes to one filter and waits for its SUBACK: the granted QoS.
async fn subscribe(
    link: &mut Session,
    filter: &str,
    qos: Qos,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Result<Qos, Halt> {
    let deadline = Instant::now() + wait;
    let filters = [(filter.to_string(), qos)];
    let early = |ev| tracing::trace!(?ev, "event before the SUBACK");
    match link
        .subscribe_and_wait(&filters, Some(deadline), interrupt, early)
        .await?
    {
        Wait::Ready(codes) => match codes.into_iter().next() {
            Some(Ok(granted)) => Ok(granted),
            Some(Err(reason)) => Err(Halt::Error(fail(
                Exit::Rejected,
                format!("the broker refused the subscription to '{filter}': {reason}"),
            ))),
            None => Err(Halt::Error(fail(
                Exit::Other,
                "the SUBACK carried no reason code",
            ))),
        },
        Wait::Timeout => Err(Halt::Error(fail(
            Exit::Timeout,
            format!(
                "no SUBACK for '{filter}' within {}",
                crate::duration::display(wait)
            ),
        ))),
        Wait::Interrupted => Err(Halt::Interrupted),
    }
}

async fn unsubscribe(
    link: &mut Session,
    filter: &str,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Result<(), Halt> {
    let deadline = Instant::now() + wait;
    match link
        .unsubscribe_and_wait(filter, Some(deadline), interrupt)
        .await?
    {
        Wait::Ready(Ok(())) => Ok(()),
        Wait::Ready(Err(reason)) => Err(Halt::Error(fail(
            Exit::Rejected,
            format!("the broker refused to unsubscribe from '{filter}': {reason}"),
        ))),
        Wait::Timeout => Err(Halt::Error(fail(
            Exit::Timeout,
            format!(
                "no UNSUBACK for '{filter}' within {}",
                crate::duration::display(wait)
            ),
        ))),
        Wait::Interrupted => Err(Halt::Interrupted),
    }
}
