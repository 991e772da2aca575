//! The check proper: connect, subscribe, publish, receive, unsubscribe and disconnect, each
//! step timed and recorded in the report as it ends, so that a failure shows how far the check
//! got.

use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use super::exchange::{subscribe, unsubscribe, Halt};
use super::report::{Report, Step, StepResult};
use super::{Failed, Options, Stop};
use crate::connection::{Event, Qos, Session, Settings, Wait};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

/// The check proper.
pub(super) async fn check(
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

impl Halt {
    /// What the check ends with when this stopped `step`; a failure is recorded in the report.
    fn at(self, report: &mut Report, step: Step, started: Instant) -> Stop {
        match self {
            Halt::Interrupted => Stop::Interrupted,
            Halt::Error(error) => failed(report, step, started, error),
        }
    }
}
