//! `mqttcli sub`: subscribe, check SUBACK per filter, print messages until a count, a timeout,
//! a signal or a closed stdout ends the run; then DISCONNECT.

use std::pin::pin;
use std::time::Duration;

use anyhow::Result;

use crate::connection::{
    sleep_until, Ack, Event, Message, Qos, Reason, Session, Settings, SubscribeProperties,
    Subscription, Wait,
};
use crate::duration;
use crate::exit::{fail, Exit};
use crate::output::{self, Format};
use crate::signals::Interrupt;

pub struct Options {
    pub filters: Vec<Subscription>,
    /// SUBSCRIBE's MQTT 5 properties.
    pub properties: SubscribeProperties,
    /// Exit after this many messages.
    pub count: Option<u64>,
    /// `-W`: exit 6 if not done by then.
    pub timeout: Option<Duration>,
    pub exit_after_sub: bool,
    pub select: Selection,
    pub format: Format,
}

/// Which received messages are printed.
pub struct Selection {
    pub no_retained: bool,
    /// Only retained ones; the first live message ends the run.
    pub retained_only: bool,
    /// Hide messages whose topic matches one of these filters.
    pub filter_out: Vec<String>,
}

enum End {
    Done,
    Timeout,
    Interrupted,
    /// Every subscription refused.
    Failed(anyhow::Error),
    /// Writing to stdout failed: what was not written is not acknowledged.
    Output(std::io::Error),
}

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let started = tokio::time::Instant::now();
    let deadline = opts.timeout.map(|t| started + t);
    let mut printer = output::stdout_printer(opts.format);

    let mut session = match Session::open(&settings, &mut interrupt, deadline).await? {
        Wait::Ready(s) => s,
        Wait::Interrupted => return Ok(Exit::Interrupted),
        Wait::Timeout => return Err(timeout_error(opts.timeout, 0)),
    };
    if let Some(limits) = &session.limits {
        if let Err(e) = limits.check_subscribe(&opts.filters, &opts.properties) {
            let _ = session.close().await;
            return Err(e);
        }
    }
    session.subscribe(&opts.filters, &opts.properties).await?;

    let mut received = 0u64;
    // Acknowledgements of printed messages, sent once their output is flushed: at least once
    // to stdout. What was not written is not acknowledged and comes again with the session.
    let mut unacked: Vec<Ack> = Vec::new();
    let mut reader_gone = pin!(output::stdout_closed());
    let end = loop {
        // Flush only when no further event is already waiting: a burst costs one write and
        // then its acknowledgements, and a lone message still reaches the pipe at once.
        let ev = match session.try_recv() {
            Some(ev) => ev,
            None => {
                if let Err(e) = printer.flush() {
                    break End::Output(e);
                }
                session.ack_all(std::mem::take(&mut unacked)).await?;
                tokio::select! {
                    ev = session.recv() => ev,
                    _ = interrupt.wait() => break End::Interrupted,
                    _ = sleep_until(deadline) => break End::Timeout,
                    _ = &mut reader_gone => break End::Done,
                }
            }
        };
        match ev? {
            // The packet ids belong to the lost connection: the broker sends those messages
            // again (with a session) and they are printed again, never lost.
            Event::ConnectionLost => unacked.clear(),
            // Without a session the broker forgot our subscriptions with the connection.
            Event::Reconnected {
                session_present: false,
            } => session.subscribe(&opts.filters, &opts.properties).await?,
            Event::SubAck(codes) => {
                if let Err(e) = check_suback(&opts.filters, &codes) {
                    // Still a clean DISCONNECT below, as for every other end.
                    break End::Failed(e);
                }
                if opts.exit_after_sub {
                    break End::Done;
                }
            }
            Event::Message(msg) => {
                // Retained messages come first after SUBACK; the first live one means there
                // are no more to show (mosquitto_sub behaves the same).
                if opts.select.retained_only && !msg.retain {
                    break End::Done;
                }
                if !wanted(&opts.select, &msg) {
                    // Handled by choosing not to print it: acknowledged in its turn.
                    unacked.extend(msg.ack);
                    continue;
                }
                if let Err(e) = printer.print(&msg) {
                    break End::Output(e);
                }
                unacked.extend(msg.ack);
                received += 1;
                if opts.count.is_some_and(|n| received >= n) {
                    break End::Done;
                }
            }
            _ => {}
        }
        // A firehose never lets the channel stay empty: look at signals and the clock here too.
        if interrupt.is_set() {
            break End::Interrupted;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break End::Timeout;
        }
    };
    // Written is acknowledged; anything after the count, or not written, stays queued.
    let end = match end {
        End::Output(e) => End::Output(e),
        other => match printer.flush() {
            Ok(()) => {
                session.ack_all(std::mem::take(&mut unacked)).await?;
                other
            }
            Err(e) => End::Output(e),
        },
    };
    session.close().await?;
    match end {
        // A reader that went away (`| head -1`) is a normal end; a full disk is not.
        End::Output(e) => output::write_failed(e).map(|()| Exit::Success),
        End::Done => Ok(Exit::Success),
        End::Interrupted => Ok(Exit::Interrupted),
        End::Timeout => Err(timeout_error(opts.timeout, received)),
        End::Failed(e) => Err(e),
    }
}

fn wanted(select: &Selection, msg: &Message) -> bool {
    if select.no_retained && msg.retain || select.retained_only && !msg.retain {
        return false;
    }
    !select
        .filter_out
        .iter()
        .any(|f| crate::topic::matches(&msg.topic, f))
}

fn check_suback(filters: &[Subscription], codes: &[Result<Qos, Reason>]) -> Result<()> {
    let mut refused = Vec::new();
    for (sub, code) in filters.iter().zip(codes) {
        let (filter, asked) = (&sub.filter, &sub.qos);
        match code {
            Ok(granted) => {
                tracing::debug!("SUBACK received: subscribed to '{filter}' (QoS {granted})");
                if granted < asked {
                    tracing::warn!(
                        "the broker granted QoS {granted} for '{filter}' (asked for {asked})"
                    );
                }
            }
            Err(reason) => refused.push((filter, reason)),
        }
    }
    if refused.len() < filters.len() {
        for (filter, reason) in refused {
            tracing::warn!("subscription to '{filter}' was refused: {reason}");
        }
        return Ok(());
    }
    // Every one refused: one error line says it all, with no warning per filter before it.
    let refused: Vec<String> = refused
        .iter()
        .map(|(filter, reason)| format!("'{filter}': {reason}"))
        .collect();
    Err(fail(
        Exit::Rejected,
        format!(
            "the broker refused every subscription ({}): check the filters and the broker's access rules",
            refused.join(", ")
        ),
    ))
}

fn timeout_error(timeout: Option<Duration>, received: u64) -> anyhow::Error {
    let after = timeout.map_or(String::new(), |t| {
        format!(" after {}", duration::display(t))
    });
    fail(
        Exit::Timeout,
        format!("timed out{after} with {received} messages received (-W)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_for;

    fn filters() -> Vec<Subscription> {
        vec![
            Subscription::new("a/#", Qos::AtLeastOnce),
            Subscription::new("b", Qos::ExactlyOnce),
        ]
    }

    #[test]
    fn some_refused_is_a_warning_all_refused_an_error() {
        let granted = [
            Ok(Qos::AtLeastOnce),
            Err(Reason::new(0x87, "not authorized")),
        ];
        assert!(check_suback(&filters(), &granted).is_ok());
        let refused = [Err(Reason::new(0x80, "x")), Err(Reason::new(0x87, "y"))];
        let err = check_suback(&filters(), &refused).unwrap_err();
        assert_eq!(exit_for(&err), Exit::Rejected);
        assert!(err.to_string().contains("'a/#': x (0x80), 'b': y (0x87)"));
    }

    fn message(topic: &str, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload: bytes::Bytes::new(),
            qos: Qos::AtMostOnce,
            retain,
            properties: None,
            ack: None,
        }
    }

    fn plan_with(no_retained: bool, retained_only: bool, filter_out: &[&str]) -> Selection {
        Selection {
            no_retained,
            retained_only,
            filter_out: filter_out.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn retained_and_topic_filters() {
        assert!(wanted(&plan_with(false, false, &[]), &message("a/x", true)));
        assert!(!wanted(&plan_with(true, false, &[]), &message("a/x", true)));
        assert!(wanted(&plan_with(true, false, &[]), &message("a/x", false)));
        assert!(!wanted(
            &plan_with(false, true, &[]),
            &message("a/x", false)
        ));
        assert!(!wanted(
            &plan_with(false, false, &["a/+"]),
            &message("a/x", false)
        ));
        assert!(wanted(
            &plan_with(false, false, &["a/+"]),
            &message("a/x/y", false)
        ));
    }
}
