//! `mqttcli sub`: subscribe, check SUBACK per filter, print messages until a count, a timeout,
//! a signal or a closed stdout ends the run; then DISCONNECT.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::Result;

use crate::cli::SubArgs;
use crate::connection::{self, Event, Message, Settings};
use crate::exit::{fail, is_broken_pipe, Exit};
use crate::output::{Mode, Printer};
use crate::signals::Interrupt;

struct Plan {
    filters: Vec<(String, u8)>,
    count: Option<u64>,
    no_retained: bool,
    retained_only: bool,
    filter_out: Vec<String>,
    exit_after_sub: bool,
}

enum End {
    Done,
    Timeout,
    Interrupted,
    /// Every subscription refused.
    Failed(anyhow::Error),
}

pub async fn run(args: SubArgs, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let started = tokio::time::Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let plan = plan(&args, &settings)?;
    let mode = Mode::from_args(&args.output)?;
    let stdout = std::io::stdout().lock();
    let mut printer = Printer::new(
        std::io::BufWriter::with_capacity(64 * 1024, stdout),
        mode,
        !args.output.no_newline,
    );

    let connect = connection::connect(&settings);
    let connection::Connected {
        client, mut events, ..
    } = tokio::select! {
        c = connect => c?,
        _ = interrupt.wait() => return Ok(Exit::Interrupted),
        _ = sleep_until(deadline) => return Err(timeout_error(args.timeout, 0)),
    };
    client.subscribe(&plan.filters).await?;

    let mut received = 0u64;
    let mut reader_gone = pin!(crate::output::stdout_closed());
    let end = loop {
        let ev = {
            let mut next = pin!(events.next());
            // Flush only when no further event is already waiting: a burst costs one write,
            // and a lone message still reaches the pipe at once.
            match poll_once(next.as_mut()).await {
                Some(ev) => ev,
                None => {
                    if let Err(e) = printer.flush() {
                        break ended_by_output(e.into())?;
                    }
                    tokio::select! {
                        ev = next => ev,
                        _ = interrupt.wait() => break End::Interrupted,
                        _ = sleep_until(deadline) => break End::Timeout,
                        _ = &mut reader_gone => break End::Done,
                    }
                }
            }
        };
        match ev? {
            // Without a session the broker forgot our subscriptions with the connection.
            Event::Reconnected {
                session_present: false,
            } => client.subscribe(&plan.filters).await?,
            Event::SubAck(codes) => {
                if let Err(e) = check_suback(&plan.filters, &codes) {
                    // Still a clean DISCONNECT below, as for every other end.
                    break End::Failed(e);
                }
                if plan.exit_after_sub {
                    break End::Done;
                }
            }
            Event::Message(msg) => {
                // Retained messages come first after SUBACK; the first live one means there
                // are no more to show (mosquitto_sub behaves the same).
                if plan.retained_only && !msg.retain {
                    break End::Done;
                }
                if !wanted(&plan, &msg) {
                    continue;
                }
                if let Err(e) = printer.print(&msg) {
                    break ended_by_output(e.into())?;
                }
                received += 1;
                if plan.count.is_some_and(|n| received >= n) {
                    break End::Done;
                }
            }
            _ => {}
        }
        // A firehose never lets the event future stay pending: look at signals and the clock
        // here too.
        if interrupt.is_set() {
            break End::Interrupted;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break End::Timeout;
        }
    };
    let _ = printer.flush();
    client.disconnect().await?;
    events.drain_after_disconnect(Duration::from_secs(1)).await;
    match end {
        End::Done => Ok(Exit::Success),
        End::Interrupted => Ok(Exit::Interrupted),
        End::Timeout => Err(timeout_error(args.timeout, received)),
        End::Failed(e) => Err(e),
    }
}

fn plan(args: &SubArgs, settings: &Settings) -> Result<Plan> {
    let mut topics = args.topic.clone();
    if topics.is_empty() {
        if let Some(t) = &settings.url_topic {
            topics.push(crate::topic::parse_filter(t).map_err(|e| fail(Exit::Usage, e))?);
        }
    }
    if topics.is_empty() {
        return Err(fail(
            Exit::Usage,
            "no topic to subscribe to: add -t FILTER, e.g. -t 'sensors/#'",
        ));
    }
    let qos: Vec<u8> = match args.qos.len() {
        0 => vec![0; topics.len()],
        1 => vec![args.qos[0]; topics.len()],
        n if n == topics.len() => args.qos.clone(),
        n => {
            return Err(fail(
                Exit::Usage,
                format!(
                    "{n} -q values for {} -t filters: give one -q for all, or one per -t",
                    topics.len()
                ),
            ))
        }
    };
    Ok(Plan {
        filters: topics.into_iter().zip(qos).collect(),
        count: args.count,
        no_retained: args.no_retained,
        retained_only: args.retained_only,
        filter_out: args.filter_out.clone(),
        exit_after_sub: args.exit_after_sub,
    })
}

fn wanted(plan: &Plan, msg: &Message) -> bool {
    if plan.no_retained && msg.retain || plan.retained_only && !msg.retain {
        return false;
    }
    !plan
        .filter_out
        .iter()
        .any(|f| crate::topic::matches(&msg.topic, f))
}

fn check_suback(filters: &[(String, u8)], codes: &[Result<u8, String>]) -> Result<()> {
    let mut refused = Vec::new();
    for ((filter, asked), code) in filters.iter().zip(codes) {
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

fn ended_by_output(err: anyhow::Error) -> Result<End> {
    if is_broken_pipe(&err) {
        // The reader went away (`| head -1`): a normal end.
        Ok(End::Done)
    } else {
        Err(fail(Exit::Other, format!("cannot write to stdout: {err}")))
    }
}

fn timeout_error(timeout: Option<Duration>, received: u64) -> anyhow::Error {
    let after = timeout.map_or(String::new(), |t| format!(" after {t:?}"));
    fail(
        Exit::Timeout,
        format!("timed out{after} with {received} messages received (-W)"),
    )
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Polls a future once: `Some` if it is ready now, `None` (leaving it intact) if not.
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut fut).poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::exit_for;

    fn filters() -> Vec<(String, u8)> {
        vec![("a/#".into(), 1), ("b".into(), 2)]
    }

    #[test]
    fn some_refused_is_a_warning_all_refused_an_error() {
        assert!(check_suback(&filters(), &[Ok(1), Err("not authorized (0x87)".into())]).is_ok());
        let err = check_suback(
            &filters(),
            &[Err("x (0x80)".into()), Err("y (0x87)".into())],
        )
        .unwrap_err();
        assert_eq!(exit_for(&err), Exit::Rejected);
        assert!(err.to_string().contains("'a/#': x (0x80), 'b': y (0x87)"));
    }

    fn message(topic: &str, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload: bytes::Bytes::new(),
            qos: 0,
            retain,
            properties: None,
        }
    }

    fn plan_with(no_retained: bool, retained_only: bool, filter_out: &[&str]) -> Plan {
        Plan {
            filters: filters(),
            count: None,
            no_retained,
            retained_only,
            filter_out: filter_out.iter().map(|s| s.to_string()).collect(),
            exit_after_sub: false,
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
