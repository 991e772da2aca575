//! `mqttcli pub`: a producer task queues messages, this task drives the connection and counts
//! completions. A run is done only when every message is written (QoS 0) or acknowledged
//! (PUBACK for QoS 1, PUBCOMP for QoS 2); only then is DISCONNECT sent.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::cli::PubArgs;
use crate::connection::{self, Client, Event, Settings};
use crate::exit::{fail, Exit};
use crate::payload::Payload;
use crate::signals::Interrupt;

/// How long an interrupted or refused run waits for outstanding acknowledgements.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

enum Source {
    /// The same (or templated) payload, `repeat` times (None: until interrupted), every `interval`.
    Repeat {
        payload: Payload,
        repeat: Option<u64>,
        interval: Option<Duration>,
    },
    /// One message per line of stdin.
    Lines,
}

pub async fn run(args: PubArgs, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let topic = args
        .topic
        .clone()
        .or_else(|| settings.url_topic.clone())
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                "no topic to publish to: add -t TOPIC (or a path to -L's URL)",
            )
        })?;
    let topic = crate::topic::parse_topic(&topic).map_err(|e| fail(Exit::Usage, e))?;
    // Read every input before connecting: a bad file is a usage error, not a half-done run.
    let source = source(&args).await?;

    let connection::Connected {
        client, mut events, ..
    } = tokio::select! {
        c = connection::connect(&settings) => c?,
        _ = interrupt.wait() => return Ok(Exit::Interrupted),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let producer = tokio::spawn(produce(
        client.clone(),
        topic,
        args.qos,
        args.retain,
        source,
        stop_rx,
    ));
    tokio::pin!(producer);

    let qos = args.qos;
    let mut queued: Option<u64> = None; // known once the producer has finished
    let mut completed = 0u64;
    let mut refused: Option<String> = None;
    let mut interrupted = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut disconnect_sent = false;

    loop {
        let deadline = drain_deadline;
        tokio::select! {
            ev = events.next() => match ev {
                Ok(Event::Written) if qos == 0 => completed += 1,
                Ok(Event::Acked) if qos > 0 => completed += 1,
                Ok(Event::PublishRefused(reason)) => {
                    completed += 1;
                    if refused.is_none() {
                        refused = Some(reason);
                        let _ = stop_tx.send(true);
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                    }
                }
                Ok(Event::DisconnectSent) => break,
                Ok(_) => {}
                Err(e) => {
                    let so_far = progress(completed, queued, qos);
                    return Err(e.context(so_far));
                }
            },
            res = &mut producer, if queued.is_none() => {
                let produced = res.map_err(|e| fail(Exit::Other, format!("the publisher task failed: {e}")))?;
                match produced {
                    Ok(n) => queued = Some(n),
                    Err(e) => {
                        let _ = client.disconnect().await;
                        events.drain_after_disconnect(DRAIN_LIMIT).await;
                        return Err(e);
                    }
                }
            }
            _ = interrupt.wait(), if !interrupted => {
                interrupted = true;
                let _ = stop_tx.send(true);
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                if disconnect_sent {
                    break;
                }
                // Out of patience for the outstanding acks: leave cleanly all the same.
                client.disconnect().await?;
                disconnect_sent = true;
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
            }
        }
        if !disconnect_sent && queued == Some(completed) {
            client.disconnect().await?;
            disconnect_sent = true;
        }
    }
    // DISCONNECT is out; wait briefly for the broker to close, so it has processed it.
    events.drain_after_disconnect(Duration::from_secs(1)).await;

    let total = queued.unwrap_or(completed);
    tracing::debug!(total, completed, "publish finished");
    if let Some(reason) = refused {
        return Err(fail(
            Exit::Rejected,
            format!(
                "the broker refused a publish to this topic: {reason}; {}",
                progress(completed, queued, qos)
            ),
        ));
    }
    if completed < total {
        let msg = format!(
            "{} of {total} messages were not acknowledged before giving up",
            total - completed
        );
        if interrupted {
            tracing::warn!("{msg}");
        } else {
            return Err(fail(Exit::Rejected, msg));
        }
    }
    Ok(if interrupted {
        Exit::Interrupted
    } else {
        Exit::Success
    })
}

fn progress(completed: u64, queued: Option<u64>, qos: u8) -> String {
    let verb = if qos == 0 { "written" } else { "acknowledged" };
    match queued {
        Some(total) => format!("{completed} of {total} messages {verb}"),
        None => format!("{completed} messages {verb}"),
    }
}

async fn source(args: &PubArgs) -> Result<Source> {
    let p = &args.payload;
    if p.stdin_lines {
        if args.repeat.is_some() || args.interval.is_some() {
            return Err(fail(
                Exit::Usage,
                "-l sends each stdin line once: drop --repeat/--interval",
            ));
        }
        return Ok(Source::Lines);
    }
    let payload = if let Some(m) = &p.message {
        Payload::from_message(m, args.literal)
    } else if let Some(path) = &p.file {
        Payload::Fixed(read_file(path).await?)
    } else if p.stdin_message {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut buf)
            .await
            .map_err(|e| fail(Exit::Usage, format!("cannot read stdin: {e}")))?;
        Payload::Fixed(Bytes::from(buf))
    } else {
        Payload::Fixed(Bytes::new())
    };
    let repeat = match (args.repeat, args.interval) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    };
    Ok(Source::Repeat {
        payload,
        repeat,
        interval: args.interval.filter(|d| !d.is_zero()),
    })
}

async fn read_file(path: &Path) -> Result<Bytes> {
    tokio::fs::read(path).await.map(Bytes::from).map_err(|e| {
        fail(
            Exit::Usage,
            format!(
                "cannot read {}: {e}: check the path given with -f",
                path.display()
            ),
        )
    })
}

/// Queues every message and returns how many. It never cancels a `publish` half-way: a stop
/// request is only looked at while waiting for the next tick or line.
async fn produce(
    client: Client,
    topic: String,
    qos: u8,
    retain: bool,
    source: Source,
    mut stop: watch::Receiver<bool>,
) -> Result<u64> {
    let mut sent = 0u64;
    match source {
        Source::Repeat {
            payload,
            repeat,
            interval,
        } => {
            let mut ticks = interval.map(tokio::time::interval);
            while repeat.is_none_or(|n| sent < n) {
                if let Some(ticks) = ticks.as_mut() {
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break,
                        _ = ticks.tick() => {}
                    }
                } else if *stop.borrow() {
                    break;
                }
                client
                    .publish(&topic, qos, retain, payload.render(sent))
                    .await?;
                sent += 1;
            }
        }
        Source::Lines => {
            let mut stdin = tokio::io::stdin();
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut scanned = 0;
            loop {
                if let Some(i) = buf[scanned..].iter().position(|&b| b == b'\n') {
                    let mut line = buf.split_to(scanned + i + 1);
                    line.truncate(line.len() - 1);
                    scanned = 0;
                    client.publish(&topic, qos, retain, line.freeze()).await?;
                    sent += 1;
                    continue;
                }
                scanned = buf.len();
                buf.reserve(64 * 1024);
                let n = tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break,
                    n = stdin.read_buf(&mut buf) => n.map_err(|e| fail(Exit::Usage, format!("cannot read stdin: {e}")))?,
                };
                if n == 0 {
                    // A last line without a newline is still a line.
                    if !buf.is_empty() {
                        client
                            .publish(&topic, qos, retain, buf.split().freeze())
                            .await?;
                        sent += 1;
                    }
                    break;
                }
            }
        }
    }
    Ok(sent)
}
