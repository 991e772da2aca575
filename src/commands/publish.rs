//! `mqttcli pub`: a producer task queues messages, this task drives the connection and counts
//! completions. A run is done only when every message is written (QoS 0) or acknowledged
//! (PUBACK for QoS 1, PUBCOMP for QoS 2); only then is DISCONNECT sent. A bad input line ends
//! the input there: what came before it is still published and acknowledged, nothing after.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use crate::connection::settings::QOS2_INFLIGHT_V311;
use crate::connection::{
    self, BrokerLimits, Event, Properties, Protocol, Qos, Session, Settings, Wait,
};
use crate::exit::{exit_for, fail, usage, Exit};
use crate::output::record;
use crate::payload::{self, Payload};
use crate::signals::Interrupt;

pub struct Options {
    /// Where every message goes. None only where each line may name its own: `--topic-sep`,
    /// and `--jsonl` without `-t` (a record without a topic is then a bad line).
    pub topic: Option<String>,
    pub input: Input,
    /// The QoS and retain flag of every message; under `--jsonl`, of a record that has none.
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5 properties of every message (not under `--jsonl`: each record has its own).
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
    /// One message per line of stdin; with `topic_sep`, each line is TOPIC, SEP, PAYLOAD.
    Lines { topic_sep: Option<Vec<u8>> },
    /// One `sub --json` record per line of stdin; with `speed`, paced by the recorded times,
    /// `speed` times as fast.
    Records { speed: Option<f64> },
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
    Lines {
        topic_sep: Option<Vec<u8>>,
    },
    Records {
        speed: Option<f64>,
    },
}

/// One PUBLISH as queued, kept until it is done so that it can be sent again after a
/// reconnect. The topic and properties are shared by every message of a plain stream.
#[derive(Clone)]
struct Outgoing {
    topic: Arc<str>,
    payload: Bytes,
    qos: Qos,
    retain: bool,
    properties: Option<Arc<Properties>>,
}

/// What the producer fills in where a line does not say.
struct Defaults {
    topic: Option<Arc<str>>,
    qos: Qos,
    retain: bool,
    properties: Option<Arc<Properties>>,
    /// Under MQTT 3.1.1 a record's properties cannot be sent.
    v5: bool,
    /// An MQTT 5 broker's limits, checked per record (a recording mixes QoS and retain).
    limits: Option<BrokerLimits>,
}

impl Defaults {
    fn message(&self, topic: &Arc<str>, payload: Bytes) -> Outgoing {
        Outgoing {
            topic: topic.clone(),
            payload,
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
        }
    }
}

/// Messages queued but not yet done (written at QoS 0, acknowledged at QoS 1/2), at most; of
/// them at QoS 1/2, rumqttc's in-flight window if that is smaller (`Session::window`). Below
/// rumqttc's request queue, so queueing one never waits; it also bounds memory and gives stdin
/// back-pressure.
const WINDOW: usize = connection::REQUEST_QUEUE - 24;

/// The longest a paced replay waits for one record: far beyond any real recording, and short
/// enough that adding it to a clock cannot overflow.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

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
        Input::Lines { topic_sep } => Source::Lines { topic_sep },
        Input::Records { speed } => Source::Records { speed },
    };
    let records = matches!(source, Source::Records { .. });
    let mut session = match Session::open(&settings, &mut interrupt, None).await? {
        Wait::Ready(s) => s,
        Wait::Timeout | Wait::Interrupted => return Ok(Exit::Interrupted),
    };
    // A recording's records each have their own QoS and retain flag: checked one by one.
    if let (Some(limits), false) = (&session.limits, records) {
        if let Err(e) = limits.check_publish(opts.qos, opts.retain, opts.properties.topic_alias) {
            let _ = session.close().await;
            return Err(e);
        }
    }
    // Most runs send no properties: the plain call then builds none per message.
    let properties = (opts.properties != Properties::default()).then(|| Arc::new(opts.properties));
    let defaults = Defaults {
        topic: opts.topic.map(Arc::from),
        qos: opts.qos,
        retain: opts.retain,
        properties,
        v5: settings.protocol == Protocol::V5,
        limits: session.limits.clone(),
    };
    // At QoS 1/2 no more than rumqttc's in-flight window may be queued and unacknowledged:
    // after a resumed session it would send the surplus without flow control, on packet ids
    // still in flight, and lose some (see `Session::window`). Under 3.1.1 Mosquitto takes
    // only so many QoS 2 messages at once (see `QOS2_INFLIGHT_V311`); `resolve` sizes the
    // window for a stream at -q 2, but a recording may hold QoS 2 messages whatever -q says.
    // A window the user set (-M) is theirs to size.
    let room = Room {
        window: session.window,
        qos2: if settings.protocol == Protocol::V311 && settings.inflight.is_none() {
            usize::from(QOS2_INFLIGHT_V311)
        } else {
            usize::MAX
        },
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (msg_tx, mut msg_rx) = mpsc::channel::<Outgoing>(WINDOW);
    let producer = tokio::spawn(produce(msg_tx, source, defaults, stop_rx));
    tokio::pin!(producer);
    let mut tracker = Tracker::new(opts.qos);
    // How many messages the producer handed over, once it has finished; and why it finished
    // early, if it did (a bad line, an unreadable stdin): reported once everything before it
    // is done.
    let mut produced: Option<u64> = None;
    let mut input_error: Option<anyhow::Error> = None;
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
                        for msg in tracker.take_unacknowledged() {
                            send(&session, &msg).await?;
                        }
                    }
                }
                Ok(Event::DisconnectSent) => break,
                Ok(_) => {}
                Err(e) => return Err(e.context(tracker.progress(produced))),
            },
            msg = msg_rx.recv(), if accepting && connected && !input_done && tracker.has_room(&room) => match msg {
                Some(msg) => {
                    send(&session, &msg).await?;
                    tracker.submitted(msg);
                }
                None => input_done = true,
            },
            res = &mut producer, if produced.is_none() => {
                let done = res.map_err(|e| fail(Exit::Other, format!("the publisher task failed: {e}")))?;
                produced = Some(done.count);
                input_error = done.error;
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
        if let Some(e) = &input_error {
            // The failure to deliver matters more than the line after it: name both.
            tracing::warn!("the input ended early: {e:#}");
        }
        if interrupted {
            tracing::warn!("{msg}");
        } else if !connected {
            return Err(fail(Exit::Unreachable, msg));
        } else {
            return Err(fail(Exit::Rejected, msg));
        }
    }
    if let Some(e) = input_error {
        if interrupted {
            tracing::warn!("the input ended early: {e:#}");
        } else {
            let before = match tracker.done {
                0 => "nothing was published".to_string(),
                1 => "the 1 message before it was published, nothing after it".to_string(),
                n => format!("the {n} messages before it were published, nothing after it"),
            };
            return Err(fail(exit_for(&e), format!("{e:#}; {before}")));
        }
    }
    Ok(if interrupted {
        Exit::Interrupted
    } else {
        Exit::Success
    })
}

async fn send(session: &Session, msg: &Outgoing) -> Result<()> {
    let payload = msg.payload.clone();
    match &msg.properties {
        None => {
            session
                .publish(&msg.topic, msg.qos, msg.retain, payload)
                .await
        }
        Some(p) => {
            session
                .publish_with(
                    &msg.topic,
                    msg.qos,
                    msg.retain,
                    payload,
                    Properties::clone(p),
                )
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
            tracker.verb(),
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

/// How much may be outstanding at once (see `run`).
struct Room {
    /// QoS 1/2 messages: rumqttc's in-flight window, counted in packet ids (see `has_room`).
    window: usize,
    /// QoS 2 messages.
    qos2: usize,
}

/// What happened to every message handed to rumqttc, so that a lost connection loses nothing:
/// a message is done only when written (QoS 0) or acknowledged (QoS 1/2).
struct Tracker {
    /// Some message was at QoS 1/2: progress then counts acknowledgements, not writes.
    acknowledging: bool,
    next_seq: u64,
    /// Queued, not yet on the wire, in order.
    unwritten: VecDeque<Entry>,
    /// On the wire, waiting for PUBACK/PUBCOMP, by packet id.
    inflight: HashMap<u16, Entry>,
    /// The next QoS 1/2 PUBLISH handed to rumqttc takes the next of its packet ids, and this
    /// number: rumqttc hands out ids in turn, so a message numbered `window` below another
    /// had the same id.
    next_id_turn: u64,
    /// The turns of the QoS 1/2 messages outstanding (unwritten or in flight), and how many
    /// of those are at QoS 2.
    id_turns: BTreeSet<u64>,
    outstanding_qos2: usize,
    done: u64,
    refused: u64,
    resent: u64,
}

impl Tracker {
    fn new(qos: Qos) -> Self {
        Tracker {
            acknowledging: qos != Qos::AtMostOnce,
            next_seq: 0,
            unwritten: VecDeque::new(),
            inflight: HashMap::new(),
            next_id_turn: 0,
            id_turns: BTreeSet::new(),
            outstanding_qos2: 0,
            done: 0,
            refused: 0,
            resent: 0,
        }
    }

    fn outstanding(&self) -> usize {
        self.unwritten.len() + self.inflight.len()
    }

    /// Whether one more message, at whatever QoS, may be queued. At QoS 1/2 not only fewer
    /// than `window` may be outstanding: the packet id it will get must be free. QoS 2
    /// messages are acknowledged later than QoS 1 messages sent after them, so once a
    /// recording mixes them, ids come back out of turn, and rumqttc's ids (handed out in turn,
    /// 1..=window) could come round to one still in flight: rumqttc holds such a PUBLISH back
    /// and stops taking requests until that id is acknowledged, which after a lost connection
    /// is never.
    fn has_room(&self, room: &Room) -> bool {
        let window = room.window as u64;
        self.outstanding() < WINDOW
            && self
                .id_turns
                .first()
                .is_none_or(|oldest| self.next_id_turn - oldest < window)
            && self.outstanding_qos2 < room.qos2
    }

    /// The next id turn for a QoS 1/2 message handed to rumqttc (new or sent again).
    fn take_turn(&mut self, msg: &Outgoing) -> u64 {
        if msg.qos == Qos::AtMostOnce {
            return 0;
        }
        let turn = self.next_id_turn;
        self.next_id_turn += 1;
        self.id_turns.insert(turn);
        turn
    }

    fn submitted(&mut self, msg: Outgoing) {
        if msg.qos != Qos::AtMostOnce {
            self.acknowledging = true;
        }
        if msg.qos == Qos::ExactlyOnce {
            self.outstanding_qos2 += 1;
        }
        let turn = self.take_turn(&msg);
        self.unwritten.push_back(Entry {
            seq: self.next_seq,
            turn,
            msg,
        });
        self.next_seq += 1;
    }

    /// rumqttc writes requests in the order they were queued, so the k-th PUBLISH written is
    /// the k-th queued, except for a resumed session's resends, whose packet ids we know.
    /// Packet id 0 is a QoS 0 PUBLISH: done once written.
    fn written(&mut self, pkid: u16) {
        if pkid == 0 {
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
        if self.finish(pkid) {
            self.done += 1;
        }
    }

    fn refused(&mut self, pkid: u16) {
        if self.finish(pkid) {
            self.refused += 1;
        }
    }

    fn finish(&mut self, pkid: u16) -> bool {
        let Some(Entry { turn, msg, .. }) = self.inflight.remove(&pkid) else {
            return false;
        };
        self.id_turns.remove(&turn);
        if msg.qos == Qos::ExactlyOnce {
            self.outstanding_qos2 -= 1;
        }
        true
    }

    /// Everything not yet acknowledged, oldest first, to be queued again after a reconnect
    /// without a session. The tracker forgets them; the caller re-submits them.
    fn take_unacknowledged(&mut self) -> Vec<Outgoing> {
        let mut all: Vec<Entry> = self.inflight.drain().map(|(_, e)| e).collect();
        all.extend(self.unwritten.drain(..));
        all.sort_unstable_by_key(|e| e.seq);
        self.resent += all.len() as u64;
        // Sent again, in this order: each takes a new id, in turn.
        self.id_turns.clear();
        all.into_iter()
            .map(|Entry { seq, msg, .. }| {
                let turn = self.take_turn(&msg);
                self.unwritten.push_back(Entry {
                    seq,
                    turn,
                    msg: msg.clone(),
                });
                msg
            })
            .collect()
    }

    fn verb(&self) -> &'static str {
        if self.acknowledging {
            "acknowledged"
        } else {
            "written"
        }
    }

    fn progress(&self, produced: Option<u64>) -> String {
        let total = produced.map_or(String::new(), |n| format!(" of {n}"));
        let mut s = format!("{}{total} messages {}", self.done, self.verb());
        if self.resent > 0 {
            s.push_str(&format!(", {} sent again after reconnecting", self.resent));
        }
        if self.refused > 0 {
            s.push_str(&format!(", {} refused", self.refused));
        }
        s
    }
}

/// A message handed to rumqttc: its place in the input, its id turn (see `Tracker`).
struct Entry {
    seq: u64,
    turn: u64,
    msg: Outgoing,
}

/// How the producer ended: how many messages it handed over, and why it stopped early if it
/// did (a bad line, stdin unreadable).
struct Produced {
    count: u64,
    error: Option<anyhow::Error>,
}

/// Reads or renders every message and hands it over. A stop request is only looked at while
/// waiting for the next tick, line or due time.
async fn produce(
    tx: mpsc::Sender<Outgoing>,
    source: Source,
    defaults: Defaults,
    mut stop: watch::Receiver<bool>,
) -> Produced {
    let mut count = 0;
    let error = produce_into(&tx, source, &defaults, &mut stop, &mut count)
        .await
        .err();
    Produced { count, error }
}

async fn produce_into(
    tx: &mpsc::Sender<Outgoing>,
    source: Source,
    defaults: &Defaults,
    stop: &mut watch::Receiver<bool>,
    sent: &mut u64,
) -> Result<()> {
    let closed = || fail(Exit::Other, "the publishing task stopped early");
    let fixed_topic = || {
        defaults
            .topic
            .clone()
            .ok_or_else(|| usage("no topic to publish to: add -t TOPIC"))
    };
    match source {
        Source::Repeat {
            payload,
            repeat,
            interval,
        } => {
            let topic = fixed_topic()?;
            let mut ticks = interval.map(tokio::time::interval);
            while repeat.is_none_or(|n| *sent < n) {
                if let Some(ticks) = ticks.as_mut() {
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => break,
                        _ = ticks.tick() => {}
                    }
                } else if *stop.borrow() {
                    break;
                }
                let msg = defaults.message(&topic, payload.render(*sent));
                tx.send(msg).await.map_err(|_| closed())?;
                *sent += 1;
            }
        }
        Source::Lines { topic_sep: None } => {
            let topic = fixed_topic()?;
            let mut lines = LineReader::new();
            while let Some(line) = lines.next(stop).await? {
                tx.send(defaults.message(&topic, line))
                    .await
                    .map_err(|_| closed())?;
                *sent += 1;
            }
        }
        Source::Lines {
            topic_sep: Some(sep),
        } => {
            let mut lines = LineReader::new();
            while let Some(line) = lines.next(stop).await? {
                let msg = split_line(line, &sep, defaults)
                    .map_err(|e| usage(format!("line {} of stdin: {e}", lines.number)))?;
                tx.send(msg).await.map_err(|_| closed())?;
                *sent += 1;
            }
        }
        Source::Records { speed } => {
            let mut lines = LineReader::new();
            // The first timed record's time, and when it went: every later record is due at a
            // fixed offset from these, so time spent sending or waiting for the window is
            // never added up over a long capture.
            let mut origin: Option<(jiff::Timestamp, tokio::time::Instant)> = None;
            let mut warned = false;
            while let Some(line) = lines.next(stop).await? {
                // Blank lines (a trailing one, or spacing in a hand-written file) are no records.
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let n = lines.number;
                let (msg, time) = match read_record(&line, speed.is_some(), defaults, &mut warned) {
                    Ok(read) => read,
                    Err(e) => return Err(fail(exit_for(&e), format!("line {n} of stdin: {e:#}"))),
                };
                if let (Some(speed), Some(time)) = (speed, time) {
                    let (t0, start) = *origin.get_or_insert((time, tokio::time::Instant::now()));
                    let due = start + due_after(t0, time, speed);
                    if due > tokio::time::Instant::now() {
                        tokio::select! {
                            biased;
                            _ = stop.wait_for(|s| *s) => break,
                            _ = tokio::time::sleep_until(due) => {}
                        }
                    }
                }
                tx.send(msg).await.map_err(|_| closed())?;
                *sent += 1;
            }
        }
    }
    Ok(())
}

/// `TOPIC<SEP>PAYLOAD`, split at the first SEP.
fn split_line(line: Bytes, sep: &[u8], defaults: &Defaults) -> Result<Outgoing, String> {
    let at = line
        .windows(sep.len())
        .position(|w| w == sep)
        .ok_or_else(|| {
            format!(
                "no {:?} in it to end the topic: write each line as TOPIC, the separator, PAYLOAD",
                String::from_utf8_lossy(sep)
            )
        })?;
    let topic = std::str::from_utf8(&line[..at])
        .map_err(|_| "the topic is not UTF-8 text, which MQTT requires".to_string())?;
    let topic = crate::topic::parse_topic(topic)?;
    Ok(defaults.message(&Arc::from(topic), line.slice(at + sep.len()..)))
}

/// A record as the message to send, with its recorded time if it is to be paced.
fn read_record(
    line: &Bytes,
    with_time: bool,
    defaults: &Defaults,
    warned: &mut bool,
) -> Result<(Outgoing, Option<jiff::Timestamp>)> {
    let rec = record::parse(line, with_time).map_err(usage)?;
    let topic = match rec.topic {
        Some(t) => Arc::from(t),
        None => defaults.topic.clone().ok_or_else(|| {
            usage("no \"topic\" field, and no -t to default to: add -t TOPIC, or a topic to every record")
        })?,
    };
    let qos = rec.qos.unwrap_or(defaults.qos);
    let retain = rec.retain.unwrap_or(defaults.retain);
    if let Some(limits) = &defaults.limits {
        limits.check_publish(qos, retain, None)?;
    }
    let properties = match rec.properties {
        Some(_) if !defaults.v5 => {
            if !std::mem::replace(warned, true) {
                tracing::warn!(
                    "the recording carries MQTT 5 properties, which MQTT 3.1.1 cannot send: \
                     sending its messages without them (use -V 5 to keep them)"
                );
            }
            None
        }
        p => p.map(Arc::new),
    };
    let msg = Outgoing {
        topic,
        payload: rec.payload,
        qos,
        retain,
        properties,
    };
    Ok((msg, rec.time))
}

/// How long after the first timed record (recorded at `t0`) one recorded at `t` is due,
/// `speed` times as fast. A record from before `t0` (a recording out of order) is due at once.
fn due_after(t0: jiff::Timestamp, t: jiff::Timestamp, speed: f64) -> Duration {
    let recorded = t.duration_since(t0);
    if recorded.is_negative() {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(recorded.as_secs_f64() / speed)
        .map_or(MAX_WAIT, |d| d.min(MAX_WAIT))
}

/// Stdin, a line at a time (without its newline), in big reads: memory stays flat however
/// long the input, and a line is a slice of the read buffer, not a copy.
struct LineReader {
    stdin: tokio::io::Stdin,
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    eof: bool,
    /// The number of the line last returned, from 1.
    number: u64,
}

impl LineReader {
    fn new() -> Self {
        LineReader {
            stdin: tokio::io::stdin(),
            buf: BytesMut::with_capacity(64 * 1024),
            scanned: 0,
            eof: false,
            number: 0,
        }
    }

    /// The next line; None at the end of input, or once `stop` is set while waiting for it.
    async fn next(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Option<Bytes>> {
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(self.scanned + i + 1);
                line.truncate(line.len() - 1);
                self.scanned = 0;
                self.number += 1;
                return Ok(Some(line.freeze()));
            }
            if self.eof {
                // A last line without a newline is still a line.
                if self.buf.is_empty() {
                    return Ok(None);
                }
                self.scanned = 0;
                self.number += 1;
                return Ok(Some(self.buf.split().freeze()));
            }
            self.scanned = self.buf.len();
            self.buf.reserve(64 * 1024);
            let n = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(None),
                n = self.stdin.read_buf(&mut self.buf) => {
                    n.map_err(|e| usage(format!("cannot read stdin: {e}")))?
                }
            };
            self.eof = n == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(topic: Option<&str>) -> Defaults {
        Defaults {
            topic: topic.map(Arc::from),
            qos: Qos::AtLeastOnce,
            retain: false,
            properties: None,
            v5: true,
            limits: None,
        }
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn records_are_due_at_a_fixed_offset_from_the_first() {
        let t0 = at("2026-01-01T00:00:00Z");
        let later = at("2026-01-01T00:00:10.5Z");
        assert_eq!(due_after(t0, later, 1.0), Duration::from_millis(10_500));
        assert_eq!(due_after(t0, later, 10.0), Duration::from_millis(1_050));
        assert_eq!(due_after(t0, later, 0.5), Duration::from_secs(21));
        // Out of order: at once, and the origin stays (no drift from re-basing).
        assert_eq!(
            due_after(t0, at("2025-12-31T23:59:59Z"), 1.0),
            Duration::ZERO
        );
        // A day's capture, a millisecond at a time: no rounding piles up.
        let day = at("2026-01-01T23:59:59.999Z");
        assert_eq!(due_after(t0, day, 1.0), Duration::from_millis(86_399_999));
        // Absurd factors saturate instead of overflowing the clock.
        assert_eq!(due_after(t0, day, 1e-300), MAX_WAIT);
    }

    #[test]
    fn topic_sep_splits_at_the_first_separator() {
        let d = defaults(None);
        let m = split_line(Bytes::from_static(b"a/b\tx\ty"), b"\t", &d).unwrap();
        assert_eq!((&*m.topic, &m.payload[..]), ("a/b", &b"x\ty"[..]));
        assert_eq!(m.qos, Qos::AtLeastOnce);
        let m = split_line(Bytes::from_static(b"a :: "), b" :: ", &d).unwrap();
        assert_eq!((&*m.topic, m.payload.len()), ("a", 0));
        for (line, says) in [
            (&b"no separator"[..], "no \"\\t\" in it"),
            (b"\tpayload", "empty"),
            (b"a/#\tpayload", "wildcard"),
            (b"\xff\tpayload", "UTF-8"),
        ] {
            let e = split_line(Bytes::copy_from_slice(line), b"\t", &d)
                .err()
                .unwrap();
            assert!(e.contains(says), "{line:?}: {e}");
        }
    }

    #[test]
    fn records_take_the_flags_for_what_they_lack() {
        let mut warned = false;
        let (m, time) = read_record(
            &Bytes::from_static(br#"{"payload":"x"}"#),
            false,
            &defaults(Some("dflt")),
            &mut warned,
        )
        .unwrap();
        assert_eq!(
            (&*m.topic, m.qos, m.retain, time),
            ("dflt", Qos::AtLeastOnce, false, None)
        );
        let (m, _) = read_record(
            &Bytes::from_static(br#"{"topic":"own","payload":"x","qos":0,"retain":true}"#),
            false,
            &defaults(Some("dflt")),
            &mut warned,
        )
        .unwrap();
        assert_eq!((&*m.topic, m.qos, m.retain), ("own", Qos::AtMostOnce, true));
        let e = read_record(
            &Bytes::from_static(br#"{"payload":"x"}"#),
            false,
            &defaults(None),
            &mut warned,
        )
        .err()
        .unwrap();
        assert_eq!(exit_for(&e), Exit::Usage);
        assert!(e.to_string().contains("no -t"), "{e}");
    }

    #[test]
    fn properties_are_dropped_under_mqtt_3_1_1() {
        let line = &Bytes::from_static(
            br#"{"topic":"a","payload":"x","properties":{"content_type":"t"}}"#,
        );
        let mut warned = false;
        let (m, _) = read_record(line, false, &defaults(None), &mut warned).unwrap();
        assert!(m.properties.is_some() && !warned);
        let v311 = Defaults {
            v5: false,
            ..defaults(None)
        };
        let (m, _) = read_record(line, false, &v311, &mut warned).unwrap();
        assert!(m.properties.is_none() && warned);
    }

    #[test]
    fn a_broker_limit_names_the_record() {
        let limited = Defaults {
            limits: Some(BrokerLimits {
                maximum_qos: Some(1),
                ..BrokerLimits::default()
            }),
            ..defaults(Some("a"))
        };
        let mut warned = false;
        let e = read_record(
            &Bytes::from_static(br#"{"payload":"x","qos":2}"#),
            false,
            &limited,
            &mut warned,
        )
        .err()
        .unwrap();
        assert_eq!(exit_for(&e), Exit::Rejected);
    }

    fn msg(qos: Qos) -> Outgoing {
        Outgoing {
            topic: Arc::from("t"),
            payload: Bytes::new(),
            qos,
            retain: false,
            properties: None,
        }
    }

    #[test]
    fn the_tracker_follows_mixed_qos() {
        let mut t = Tracker::new(Qos::AtMostOnce);
        let room = Room { window: 2, qos2: 1 };
        t.submitted(msg(Qos::AtMostOnce));
        t.submitted(msg(Qos::ExactlyOnce));
        assert!(
            !t.has_room(&room),
            "a second QoS 2 message would pass the QoS 2 limit"
        );
        t.submitted(msg(Qos::AtLeastOnce));
        assert_eq!(
            (t.outstanding(), t.id_turns.len(), t.outstanding_qos2),
            (3, 2, 1)
        );
        t.written(0);
        t.written(5);
        t.written(6);
        assert_eq!((t.done, t.outstanding()), (1, 2));
        // A resumed session's resend of an id in flight takes nothing from the queue.
        t.written(5);
        t.acked(6);
        assert!(!t.has_room(&room), "the QoS 2 message is still in flight");
        t.acked(5);
        assert_eq!((t.done, t.outstanding(), t.outstanding_qos2), (3, 0, 0));
        assert!(t.has_room(&room));
        assert_eq!(t.verb(), "acknowledged");
        assert_eq!(Tracker::new(Qos::AtMostOnce).verb(), "written");
    }

    /// rumqttc hands out ids 1..=window in turn: a QoS 2 message still in flight holds its id
    /// however few are outstanding, until `window` more have gone out.
    #[test]
    fn no_message_is_queued_onto_an_id_still_in_flight() {
        let mut t = Tracker::new(Qos::AtLeastOnce);
        let room = Room {
            window: 3,
            qos2: usize::MAX,
        };
        t.submitted(msg(Qos::ExactlyOnce)); // id 1
        t.submitted(msg(Qos::AtLeastOnce)); // id 2
        t.submitted(msg(Qos::AtLeastOnce)); // id 3
        for pkid in 1..=3 {
            t.written(pkid);
        }
        t.acked(2);
        t.acked(3);
        // One outstanding of a window of 3, but the next message would get id 1.
        assert_eq!(t.outstanding(), 1);
        assert!(!t.has_room(&room));
        t.acked(1);
        assert!(t.has_room(&room));
        // QoS 0 messages take no id.
        for _ in 0..5 {
            t.submitted(msg(Qos::AtMostOnce));
        }
        assert!(t.has_room(&room));

        // Sent again after a reconnect, in order, they take new ids in turn.
        let mut t = Tracker::new(Qos::AtLeastOnce);
        for _ in 0..3 {
            t.submitted(msg(Qos::AtLeastOnce));
        }
        t.written(1);
        assert_eq!(t.take_unacknowledged().len(), 3);
        assert_eq!(t.id_turns.iter().copied().collect::<Vec<_>>(), [3, 4, 5]);
        assert!(!t.has_room(&room));
    }
}
