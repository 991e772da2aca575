//! `mqttcli pub`: a producer task queues messages, this task drives the connection and counts
//! completions. A run is done only when every message is written (QoS 0) or acknowledged
//! (PUBACK for QoS 1, PUBCOMP for QoS 2); only then is DISCONNECT sent.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use crate::connection::{self, Event, Properties, Qos, Session, Settings, Wait};
use crate::exit::{fail, usage, Exit};
use crate::payload::{self, Payload};
use crate::signals::Interrupt;

pub struct Options {
    pub topic: String,
    pub input: Input,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 properties of every message.
    pub properties: Properties,
    /// How long to wait for outstanding acknowledgements once the input has ended.
    pub ack_timeout: Duration,
    /// A progress line on stderr when it is a terminal (streams only, not under --quiet).
    pub progress: bool,
}

/// What to publish, as the flags say it.
pub enum Input {
    /// The same (or templated) payload, `repeat` times (None: until interrupted), every
    /// `interval`.
    Repeat {
        payload: payload::Source,
        repeat: Option<u64>,
        interval: Option<Duration>,
    },
    /// One message per line of stdin.
    Lines,
}

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

/// Messages queued but not yet done (written at QoS 0, acknowledged at QoS 1/2), at most; at
/// QoS 1/2 rumqttc's in-flight window if that is smaller (`Session::window`). Below rumqttc's
/// request queue, so queueing one never waits; it also bounds memory and gives stdin
/// back-pressure.
const WINDOW: usize = connection::REQUEST_QUEUE - 24;

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    // Read every input before connecting: a bad file is a usage error, not a half-done run.
    let source = match opts.input {
        Input::Repeat {
            payload,
            repeat,
            interval,
        } => Source::Repeat {
            payload: payload.load().await?,
            repeat,
            interval,
        },
        Input::Lines => Source::Lines,
    };
    let mut session = match Session::open(&settings, &mut interrupt, None).await? {
        Wait::Ready(s) => s,
        Wait::Timeout | Wait::Interrupted => return Ok(Exit::Interrupted),
    };
    let (topic, qos, retain) = (opts.topic, opts.qos, opts.retain);
    if let Some(limits) = &session.limits {
        if let Err(e) = limits.check_publish(qos, retain, opts.properties.topic_alias) {
            let _ = session.close().await;
            return Err(e);
        }
    }
    // Most runs send no properties: the plain call then builds none per message.
    let properties = (opts.properties != Properties::default()).then_some(opts.properties);

    // At QoS 1/2 no more than rumqttc's in-flight window may be queued and unacknowledged:
    // after a resumed session it would send the surplus without flow control, on packet ids
    // still in flight, and lose some (see `Session::window`).
    let handed = if qos == Qos::AtMostOnce {
        WINDOW
    } else {
        WINDOW.min(session.window)
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (msg_tx, mut msg_rx) = mpsc::channel::<Bytes>(WINDOW);
    let producer = tokio::spawn(produce(msg_tx, source, stop_rx));
    tokio::pin!(producer);
    let mut tracker = Tracker::new(qos);
    let mut produced: Option<u64> = None; // known once the producer has finished
    let mut input_done = false;
    let mut connected = true;
    let mut refused: Option<String> = None;
    let mut interrupted = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut disconnect_sent = false;
    // Set once the input has ended with messages outstanding: a broker gone for good must
    // not keep a finished stream waiting for ever.
    let mut gave_up_at: Option<tokio::time::Instant> = None;
    let mut progress = Progress::new(opts.progress);

    loop {
        let deadline = drain_deadline;
        let accepting = !interrupted && refused.is_none() && !disconnect_sent;
        tokio::select! {
            // Events first: a lost connection must be seen before anything more is queued.
            biased;
            ev = session.recv() => match ev {
                Ok(Event::Written { pkid }) => tracker.written(pkid),
                Ok(Event::Acked { pkid }) => tracker.acked(pkid),
                Ok(Event::PublishRefused { pkid, reason }) => {
                    tracker.refused(pkid);
                    if refused.is_none() {
                        refused = Some(reason.to_string());
                        let _ = stop_tx.send(true);
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                    }
                }
                Ok(Event::ConnectionLost) => connected = false,
                Ok(Event::Reconnected { session_present }) => {
                    connected = true;
                    // With the session resumed rumqttc resends what was unacknowledged itself;
                    // without it, rumqttc has dropped those messages, so send them again.
                    if !session_present {
                        for payload in tracker.take_unacknowledged() {
                            send(&session, &topic, qos, retain, &properties, payload).await?;
                        }
                    }
                }
                Ok(Event::DisconnectSent) => break,
                Ok(_) => {}
                Err(e) => return Err(e.context(tracker.progress(produced))),
            },
            msg = msg_rx.recv(), if accepting && connected && !input_done && tracker.outstanding() < handed => match msg {
                Some(payload) => {
                    tracker.submitted(payload.clone());
                    send(&session, &topic, qos, retain, &properties, payload).await?;
                }
                None => input_done = true,
            },
            res = &mut producer, if produced.is_none() => {
                let result = res.map_err(|e| fail(Exit::Other, format!("the publisher task failed: {e}")))?;
                match result {
                    Ok(n) => produced = Some(n),
                    Err(e) => {
                        let _ = session.close().await;
                        return Err(e);
                    }
                }
            }
            _ = progress.tick() => progress.show(&tracker),
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
                session.disconnect().await?;
                disconnect_sent = true;
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
            }
        }
        let finished = (produced.is_some() && input_done) || !accepting;
        if finished && !disconnect_sent && connected && tracker.outstanding() == 0 {
            session.disconnect().await?;
            disconnect_sent = true;
        }
        // The input has ended once the producer is done, whether or not its last messages
        // have left the channel (nothing is taken from it while the connection is down).
        if produced.is_some() && gave_up_at.is_none() && drain_deadline.is_none() {
            let at = tokio::time::Instant::now() + opts.ack_timeout;
            gave_up_at = Some(at);
            drain_deadline = Some(at);
        }
    }
    progress.clear();
    // The driver waits (bounded) for the broker to close after our DISCONNECT.
    session.finish().await;

    tracing::debug!("{}", tracker.progress(produced));
    if let Some(reason) = refused {
        return Err(fail(
            Exit::Rejected,
            format!(
                "the broker refused a publish to this topic: {reason}; {}",
                tracker.progress(produced)
            ),
        ));
    }
    // Acknowledgement outstanding, and never sent at all (still in the channel).
    let left = tracker.outstanding() as u64 + produced.map_or(0, |n| n - tracker.next_seq);
    if left > 0 {
        let waited = match gave_up_at {
            Some(_) if !interrupted && !connected => format!(
                " within --ack-timeout {} after the input ended (the broker could not be reached)",
                crate::duration::display(opts.ack_timeout)
            ),
            Some(_) if !interrupted => format!(
                " within --ack-timeout {} after the input ended",
                crate::duration::display(opts.ack_timeout)
            ),
            _ => " before giving up".to_string(),
        };
        let msg = format!(
            "{left} messages were not acknowledged{waited}; {}",
            tracker.progress(produced)
        );
        if interrupted {
            tracing::warn!("{msg}");
        } else if !connected {
            return Err(fail(Exit::Unreachable, msg));
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

async fn send(
    session: &Session,
    topic: &str,
    qos: Qos,
    retain: bool,
    properties: &Option<Properties>,
    payload: Bytes,
) -> Result<()> {
    match properties {
        None => session.publish(topic, qos, retain, payload).await,
        Some(p) => {
            session
                .publish_with(topic, qos, retain, payload, p.clone())
                .await
        }
    }
}

/// A one-line progress report for long streams, redrawn every second on stderr, only when
/// stderr is a terminal (never in logs or pipes) and not under `--quiet`.
struct Progress {
    ticks: Option<tokio::time::Interval>,
    started: std::time::Instant,
    shown: bool,
}

impl Progress {
    fn new(streaming: bool) -> Self {
        use std::io::IsTerminal;
        let ticks = (streaming && std::io::stderr().is_terminal()).then(|| {
            let start = tokio::time::Instant::now() + Duration::from_secs(1);
            tokio::time::interval_at(start, Duration::from_secs(1))
        });
        Progress {
            ticks,
            started: std::time::Instant::now(),
            shown: false,
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

    fn show(&mut self, tracker: &Tracker) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let sent = tracker.next_seq;
        eprint!(
            "\r\x1b[Kmqttcli: {sent} sent, {} {}, {:.0} msg/s",
            tracker.done,
            if tracker.qos == Qos::AtMostOnce {
                "written"
            } else {
                "acknowledged"
            },
            tracker.done as f64 / secs
        );
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

/// What happened to every message handed to rumqttc, so that a lost connection loses nothing:
/// a message is done only when written (QoS 0) or acknowledged (QoS 1/2).
struct Tracker {
    qos: Qos,
    next_seq: u64,
    /// Queued, not yet on the wire, in order.
    unwritten: VecDeque<(u64, Bytes)>,
    /// On the wire, waiting for PUBACK/PUBCOMP, by packet id.
    inflight: HashMap<u16, (u64, Bytes)>,
    done: u64,
    refused: u64,
    resent: u64,
}

impl Tracker {
    fn new(qos: Qos) -> Self {
        Tracker {
            qos,
            next_seq: 0,
            unwritten: VecDeque::new(),
            inflight: HashMap::new(),
            done: 0,
            refused: 0,
            resent: 0,
        }
    }

    fn outstanding(&self) -> usize {
        self.unwritten.len() + self.inflight.len()
    }

    fn submitted(&mut self, payload: Bytes) {
        self.unwritten.push_back((self.next_seq, payload));
        self.next_seq += 1;
    }

    /// rumqttc writes requests in the order they were queued, so the k-th PUBLISH written is
    /// the k-th queued, except for a resumed session's resends, whose packet ids we know.
    fn written(&mut self, pkid: u16) {
        if self.qos == Qos::AtMostOnce {
            if self.unwritten.pop_front().is_some() {
                self.done += 1;
            }
        } else if !self.inflight.contains_key(&pkid) {
            if let Some(msg) = self.unwritten.pop_front() {
                self.inflight.insert(pkid, msg);
            }
        }
    }

    /// An ack for a packet id we do not know is left over from a connection that was lost;
    /// its message has been queued again (a duplicate at worst, never a loss).
    fn acked(&mut self, pkid: u16) {
        if self.inflight.remove(&pkid).is_some() {
            self.done += 1;
        }
    }

    fn refused(&mut self, pkid: u16) {
        if self.inflight.remove(&pkid).is_some() {
            self.refused += 1;
        }
    }

    /// Everything not yet acknowledged, oldest first, to be queued again after a reconnect
    /// without a session. The tracker forgets them; the caller re-submits them.
    fn take_unacknowledged(&mut self) -> Vec<Bytes> {
        let mut all: Vec<(u64, Bytes)> = self.inflight.drain().map(|(_, m)| m).collect();
        all.extend(self.unwritten.drain(..));
        all.sort_unstable_by_key(|(seq, _)| *seq);
        self.resent += all.len() as u64;
        all.into_iter()
            .map(|(seq, payload)| {
                self.unwritten.push_back((seq, payload.clone()));
                payload
            })
            .collect()
    }

    fn progress(&self, produced: Option<u64>) -> String {
        let verb = if self.qos == Qos::AtMostOnce {
            "written"
        } else {
            "acknowledged"
        };
        let total = produced.map_or(String::new(), |n| format!(" of {n}"));
        let mut s = format!("{}{total} messages {verb}", self.done);
        if self.resent > 0 {
            s.push_str(&format!(", {} sent again after reconnecting", self.resent));
        }
        if self.refused > 0 {
            s.push_str(&format!(", {} refused", self.refused));
        }
        s
    }
}

/// Reads or renders every message and hands it over; returns how many. A stop request is
/// only looked at while waiting for the next tick or line.
async fn produce(
    tx: mpsc::Sender<Bytes>,
    source: Source,
    mut stop: watch::Receiver<bool>,
) -> Result<u64> {
    let mut sent = 0u64;
    let closed = || fail(Exit::Other, "the publishing task stopped early");
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
                tx.send(payload.render(sent)).await.map_err(|_| closed())?;
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
                    tx.send(line.freeze()).await.map_err(|_| closed())?;
                    sent += 1;
                    continue;
                }
                scanned = buf.len();
                buf.reserve(64 * 1024);
                let n = tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break,
                    n = stdin.read_buf(&mut buf) => n.map_err(|e| usage(format!("cannot read stdin: {e}")))?,
                };
                if n == 0 {
                    // A last line without a newline is still a line.
                    if !buf.is_empty() {
                        tx.send(buf.split().freeze()).await.map_err(|_| closed())?;
                        sent += 1;
                    }
                    break;
                }
            }
        }
    }
    Ok(sent)
}
