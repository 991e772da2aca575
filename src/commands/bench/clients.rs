//! One bench client each: connect, do the kind's work until done or told to stop, and return
//! what it counted. A client never fails the run: what goes wrong is counted by reason.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::time::Instant;

use super::header::{unix_us, Header};
use super::histogram::Schedule;
use super::streams::{Arrival, Streams};
use super::summary::{Totals, CONNACK, CONNECT, END_TO_END, PUBLISH, TCP, TLS};
use super::{workers, Client, PubOptions, SubOptions};
use crate::connection::settings::DEFAULT_INFLIGHT;
use crate::connection::{self, sleep_until, Event, Held, Qos, Session, Steps, Subscription, Wait};
use crate::exit::{exit_for, Exit};

impl Client {
    /// Connects, counting the connection or the reason it failed.
    async fn open(&mut self, t: &mut Totals) -> Option<Session> {
        let t0 = Instant::now();
        let settings = self.connecting.settings(self.index);
        let (interrupt, end) = (&mut self.interrupt, self.end);
        // Boxed: connecting is the largest state of a client's future, and a task keeps its
        // future's full size for as long as it holds the connection.
        let opening = Box::pin(async move { Session::open(&settings, interrupt, end).await });
        let opened = opening.await;
        self.opened(t, t0, opened)
    }

    /// Counts how an attempt to connect that began at `t0` ended.
    fn opened<T>(&self, t: &mut Totals, t0: Instant, opened: anyhow::Result<Wait<T>>) -> Option<T> {
        match opened {
            Ok(Wait::Ready(s)) => {
                t.connected = 1;
                t.last_connect = Some(Instant::now());
                t.record(CONNECT, t0.elapsed());
                self.counters.connected.fetch_add(1, Relaxed);
                Some(s)
            }
            Ok(Wait::Timeout) => {
                // Asked for, never made: a broker too slow to accept counts against it.
                t.connect_failed = 1;
                self.counters.failed.fetch_add(1, Relaxed);
                self.problem(
                    t,
                    "not connected before --duration ended".into(),
                    Exit::Unreachable,
                );
                None
            }
            Ok(Wait::Interrupted) => None,
            Err(e) => {
                t.connect_failed = 1;
                self.counters.failed.fetch_add(1, Relaxed);
                self.failed(t, &e);
                None
            }
        }
    }

    fn failed(&self, t: &mut Totals, e: &anyhow::Error) {
        self.counters.errors.fetch_add(1, Relaxed);
        t.error(e.to_string());
        t.exit = t.exit.or(Some(exit_for(e)));
    }

    fn problem(&self, t: &mut Totals, reason: String, exit: Exit) {
        self.counters.errors.fetch_add(1, Relaxed);
        t.error(reason);
        t.exit = t.exit.or(Some(exit));
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// What the connection's end means to a client: counted, then the client ends.
fn lost(c: &Client, t: &mut Totals, ev: anyhow::Result<Event>) {
    match ev {
        Err(e) => c.failed(t, &e),
        Ok(_) => c.problem(t, "the connection was lost".into(), Exit::Unreachable),
    }
}

/// `bench conn` where the settings need a Session (`Held::fits`): connect and hold the
/// connection until the run ends.
pub async fn hold_session(mut c: Client) -> Totals {
    let mut t = Totals::for_client(c.sink.clone());
    let Some(mut session) = c.open(&mut t).await else {
        return t;
    };
    let mut stop = c.stop.clone();
    loop {
        tokio::select! {
            ev = session.recv() => match ev {
                Ok(Event::ConnectionLost | Event::DisconnectSent) | Err(_) => {
                    lost(&c, &mut t, ev);
                    return t;
                }
                Ok(_) => {}
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = session.close().await;
    t
}

impl Client {
    /// Connects as a held connection (`connection::Held`), counting the connection or the
    /// reason it failed.
    async fn open_held(&mut self, t: &mut Totals) -> Option<(Held, Steps)> {
        let t0 = Instant::now();
        // Boxed, as a Session's opening is: the task keeps its future's largest state for as
        // long as it holds the connection, and a TLS handshake's is large.
        let settings = self.connecting.settings(self.index);
        let addrs = self.connecting.addrs.clone();
        let opening = Box::pin(async move { Held::open(&settings, addrs.as_deref()).await });
        let opened = tokio::select! {
            held = opening => held.map(Wait::Ready),
            _ = self.interrupt.wait() => Ok(Wait::Interrupted),
            _ = sleep_until(self.end) => Ok(Wait::Timeout),
        };
        self.opened(t, t0, opened)
    }
}

/// `bench conn`: connect and hold the connection until the run ends, as a held connection
/// (`connection::Held`: a few KB where a Session takes 38, and each step of connecting timed).
pub async fn hold(mut c: Client) -> Totals {
    let mut t = Totals::for_client(c.sink.clone());
    let Some((held, steps)) = c.open_held(&mut t).await else {
        return t;
    };
    t.record(TCP, steps.tcp);
    if let Some(tls) = steps.tls {
        t.record(TLS, tls);
    }
    t.record(CONNACK, steps.connack);
    let mut stop = c.stop.clone();
    let stopped = std::pin::pin!(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    if let Err(e) = held.hold(stopped).await {
        c.failed(&mut t, &e);
    }
    t
}

/// The most PUBLISHes a client writes at once: enough that a system call carries many, few
/// enough that one client's burst does not hold up the others on its thread for long.
const BURST: usize = 64;
/// The shortest PUBACK, in 3.1.1 and 5 alike: fixed header and packet id.
const PUBACK_MIN: usize = 4;

/// The pacing, window and ending rules that both publishers follow (`publish` through a
/// Session, `publish_held` on a held connection): which messages are due, how many may go
/// at once, and how long to wait for acknowledgements once all have gone.
struct Pacer {
    schedule: Schedule,
    mono0: Instant,
    wall0: SystemTime,
    publisher: u32,
    window: usize,
    /// Unpaced, the window is topped up once this many are free, not at each acknowledgement:
    /// a burst of one is a system call per message again.
    refill: u64,
    count: Option<u64>,
    paced: bool,
    ack_timeout: std::time::Duration,
    /// The next message's sequence number: how many have gone.
    seq: u64,
    stopping: bool,
    /// Set once nothing more will be sent: how long acknowledgements are waited for.
    drain_until: Option<Instant>,
}

enum Next {
    /// Everything is settled, or nothing more will be sent and nothing is outstanding.
    Done,
    /// Up to `room` messages may go now as one burst: those due by `now`.
    Send { now: Instant, room: u64 },
    /// Wait for an event, for `due` if `can_send`, or for `drain_until`.
    Wait {
        due: Option<Instant>,
        can_send: bool,
    },
}

impl Pacer {
    fn new(o: &PubOptions, publisher: u32, window: usize) -> Pacer {
        let mono0 = Instant::now();
        Pacer {
            schedule: Schedule::new(mono0.into_std(), o.rate),
            mono0,
            wall0: SystemTime::now(),
            publisher,
            window,
            refill: (window / 4).clamp(1, BURST) as u64,
            count: o.count,
            paced: o.rate.is_some(),
            ack_timeout: o.ack_timeout,
            seq: 0,
            stopping: false,
            drain_until: None,
        }
    }

    /// `outstanding`: messages sent (or queued) and not yet acknowledged.
    fn next(&mut self, stopped: bool, outstanding: usize) -> Next {
        self.stopping = self.stopping || stopped;
        let more = !self.stopping && self.count.is_none_or(|n| self.seq < n);
        if !more && outstanding == 0 {
            return Next::Done;
        }
        if !more && self.drain_until.is_none() {
            self.drain_until = Some(Instant::now() + self.ack_timeout);
        }
        let left = self.count.map_or(u64::MAX, |n| n - self.seq.min(n));
        let low = if self.paced { 1 } else { self.refill };
        let can_send = more
            && outstanding < self.window
            && (self.window - outstanding) as u64 >= left.min(low);
        let due = self.schedule.due(self.seq).map(Instant::from_std);
        let now = Instant::now();
        if can_send && due.is_none_or(|d| d <= now) {
            let room = (self.window - outstanding).min(BURST) as u64;
            let room = self.count.map_or(room, |n| room.min(n - self.seq));
            return Next::Send { now, room };
        }
        Next::Wait { due, can_send }
    }

    /// Message `k`'s header and when it was due, if it is due by `now` (paced runs).
    fn message(&self, k: u64, now: Instant) -> Option<(Header, Instant)> {
        if self
            .schedule
            .due(k)
            .is_some_and(|d| Instant::from_std(d) > now)
        {
            return None;
        }
        let origin = Instant::from_std(self.schedule.origin(k, now.into_std()));
        let header = Header {
            sent_us: unix_us(self.wall0 + origin.duration_since(self.mono0)),
            publisher: self.publisher,
            seq: k,
        };
        Some((header, origin))
    }

    /// `n` messages of a burst that began at `now` have gone.
    fn sent(&mut self, c: &Client, t: &mut Totals, now: Instant, n: u64) {
        t.first_message.get_or_insert(now);
        self.seq += n;
        t.sent += n;
        c.counters.sent.fetch_add(n, Relaxed);
    }
}

/// What the progress line has been told of `t.acked`: it is told before each wait, not at each
/// acknowledgement, as its counter is shared by every thread.
fn report_acked(c: &Client, t: &Totals, reported: &mut u64) {
    if t.acked > *reported {
        c.counters.acked.fetch_add(t.acked - *reported, Relaxed);
        *reported = t.acked;
    }
}

/// A publisher's end: what the progress line was not yet told, and what was never acknowledged.
fn settle(c: &Client, t: &mut Totals, reported: u64, outstanding: usize, broken: bool) {
    c.counters.acked.fetch_add(t.acked - reported, Relaxed);
    t.unacknowledged = outstanding as u64;
    if t.unacknowledged > 0 && !broken {
        c.problem(
            t,
            "messages not acknowledged within --ack-timeout".into(),
            Exit::Rejected,
        );
    }
}

/// `bench pub`: publish, paced or as fast as the in-flight window allows, each payload
/// starting with a header; latency from when each was due to its acknowledgement (QoS 1/2) or
/// its write to the socket (QoS 0).
pub async fn publish(mut c: Client, o: &PubOptions) -> Totals {
    let mut t = Totals::for_client(c.sink.clone());
    let Some(mut session) = c.open(&mut t).await else {
        return t;
    };
    let mut stop = c.stop.clone();
    let topic = o.topic.expand(c.index);
    // rumqttc's request queue must never fill (a publish would then wait, and nothing would
    // read events meanwhile); at QoS 1/2 its in-flight window is the limit (`Session::window`).
    let queue = connection::REQUEST_QUEUE - 24;
    let window = if o.qos == Qos::AtMostOnce {
        queue
    } else {
        queue.min(session.window)
    };
    let mut pacer = Pacer::new(o, c.index as u32, window);
    let mut unwritten: VecDeque<Instant> = VecDeque::new();
    let mut inflight = InFlight::default();
    let mut broken = false;
    let mut reported = 0u64;

    'run: loop {
        while let Some(ev) = session.try_recv() {
            if !on_event(&c, &mut t, o.qos, ev, &mut unwritten, &mut inflight) {
                broken = true;
                break 'run;
            }
        }
        let (due, can_send) = match pacer.next(c.stopped(), unwritten.len() + inflight.len()) {
            Next::Done => break,
            Next::Wait { due, can_send } => (due, can_send),
            Next::Send { now, room } => {
                // All that may go now, as one burst: one write to the socket for them all
                // (`Session::publish_burst`) rather than one each.
                let mut slab = BytesMut::with_capacity(o.size * room as usize);
                let mut payloads = Vec::with_capacity(room as usize);
                while (payloads.len() as u64) < room {
                    let Some((header, origin)) =
                        pacer.message(pacer.seq + payloads.len() as u64, now)
                    else {
                        break;
                    };
                    header.encode_into(&mut slab, o.size);
                    payloads.push(slab.split().freeze());
                    unwritten.push_back(origin);
                }
                let n = payloads.len() as u64;
                if let Err(e) = session
                    .publish_burst(&topic, o.qos, o.retain, payloads)
                    .await
                {
                    c.failed(&mut t, &e);
                    broken = true;
                    break;
                }
                pacer.sent(&c, &mut t, now, n);
                continue;
            }
        };
        report_acked(&c, &t, &mut reported);
        tokio::select! {
            biased;
            ev = session.recv() => if !on_event(&c, &mut t, o.qos, ev, &mut unwritten, &mut inflight) {
                broken = true;
                break;
            },
            _ = stop.wait_for(|s| *s), if !pacer.stopping => pacer.stopping = true,
            _ = sleep_until(due), if can_send => {}
            _ = sleep_until(pacer.drain_until), if pacer.drain_until.is_some() => break,
        }
    }
    settle(
        &c,
        &mut t,
        reported,
        unwritten.len() + inflight.len(),
        broken,
    );
    if !broken {
        let _ = session.close().await;
    }
    t
}

/// `bench pub` at QoS 0 and 1 on a held connection (`connection::Held`, where it fits): the
/// PUBLISHes of a burst are encoded here into one buffer and written with one system call,
/// and PUBACKs are read straight off the socket. Through a Session each PUBLISH and each
/// PUBACK crossed two channels and became an event in rumqttc, and a burst took two writes
/// (rumqttc's event loop wrote its first on its own): the generator spent 0.38-0.44× the
/// broker's CPU per QoS 1 message. Same pacing, window, latencies and counts as `publish`.
pub async fn publish_held(mut c: Client, o: &PubOptions) -> Totals {
    let mut t = Totals::for_client(c.sink.clone());
    let Some((mut held, _)) = c.open_held(&mut t).await else {
        return t;
    };
    let mut stop = c.stop.clone();
    let topic = o.topic.expand(c.index);
    if let Err(e) = held.fits_publish(&topic, o.qos, o.size) {
        c.failed(&mut t, &e);
        held.close().await;
        return t;
    }
    let inflight_asked = c.connecting.settings.inflight.unwrap_or(DEFAULT_INFLIGHT);
    let window = match o.qos {
        // Nothing to wait for: a burst goes as soon as the socket takes the last.
        Qos::AtMostOnce => BURST,
        _ => usize::from(held.window(inflight_asked).max(1)),
    };
    let mut pacer = Pacer::new(o, c.index as u32, window);
    let mut inflight = InFlight::default();
    let mut next_pkid: u16 = 0;
    let mut broken = false;
    let mut reported = 0u64;
    let keepalive = held.keepalive();
    let mut ping_at = (!keepalive.is_zero()).then(|| Instant::now() + keepalive);
    let mut awaiting_pong = false;
    let mut ping_due = false;
    let mut out = BytesMut::new();
    let mut slab = BytesMut::new();
    let mut written: Vec<Instant> = Vec::with_capacity(BURST);

    'run: loop {
        let (due, can_send) = match pacer.next(c.stopped(), inflight.len()) {
            Next::Done => break,
            Next::Wait { due, can_send } => (due, can_send),
            Next::Send { now, room } => {
                out.clear();
                written.clear();
                while (written.len() as u64) < room {
                    let Some((header, origin)) =
                        pacer.message(pacer.seq + written.len() as u64, now)
                    else {
                        break;
                    };
                    slab.clear();
                    header.encode_into(&mut slab, o.size);
                    let pkid = match o.qos {
                        Qos::AtMostOnce => 0,
                        _ => {
                            next_pkid = inflight.free_after(next_pkid, window as u16);
                            inflight.insert(next_pkid, origin);
                            next_pkid
                        }
                    };
                    held.publish_packet(&mut out, &topic, o.qos, o.retain, pkid, &slab);
                    written.push(origin);
                }
                let sent = tokio::select! {
                    biased;
                    r = held.send(&out) => r,
                    // A broker that stopped reading must not keep the run from ending.
                    _ = stop.wait_for(|s| *s), if !pacer.stopping => {
                        broken = true;
                        break 'run;
                    }
                };
                if let Err(e) = sent {
                    c.failed(&mut t, &e);
                    broken = true;
                    break;
                }
                if o.qos == Qos::AtMostOnce {
                    for origin in &written {
                        done(&mut t, *origin);
                    }
                }
                if let Some(p) = ping_at.as_mut() {
                    *p = Instant::now() + keepalive;
                }
                pacer.sent(&c, &mut t, now, written.len() as u64);
                continue;
            }
        };
        report_acked(&c, &t, &mut reported);
        // Unpaced, the window is topped up only once `refill` PUBACKs are back, and whenever
        // it waits here more than that are outstanding (`refill` is at most a quarter of it):
        // the kernel may keep the reader asleep until that many have come. Not once draining,
        // nor while a PINGRESP is awaited.
        let batch = if o.batch_reads
            && o.qos == Qos::AtLeastOnce
            && !pacer.paced
            && pacer.drain_until.is_none()
            && !awaiting_pong
        {
            PUBACK_MIN * pacer.refill as usize
        } else {
            1
        };
        held.batch_reads(batch);
        tokio::select! {
            biased;
            ev = held.recv() => {
                // Anything from the broker shows it is there.
                awaiting_pong = false;
                match ev {
                    Ok(Event::Acked { pkid }) => {
                        // Batched, the kernel gathers them already: the worker's linger
                        // would only add a sleep.
                        if batch == 1 {
                            workers::read(1);
                        }
                        if let Some(origin) = inflight.remove(pkid) {
                            done(&mut t, origin);
                        }
                    }
                    Ok(Event::PublishRefused { pkid, reason }) => {
                        inflight.remove(pkid);
                        c.problem(&mut t, format!("publish refused: {reason}"), Exit::Rejected);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        c.failed(&mut t, &e);
                        broken = true;
                        break;
                    }
                }
            },
            _ = stop.wait_for(|s| *s), if !pacer.stopping => pacer.stopping = true,
            _ = sleep_until(due), if can_send => {}
            _ = sleep_until(pacer.drain_until), if pacer.drain_until.is_some() => break,
            _ = sleep_until(ping_at) => ping_due = true,
        }
        // Outside the select: its output holds the watch's read guard, which must not be
        // held across an await.
        if std::mem::take(&mut ping_due) {
            // As rumqttc does: the connection is lost when the next ping is due before
            // anything came back.
            if awaiting_pong {
                c.problem(
                    &mut t,
                    "the broker stopped answering pings".into(),
                    Exit::Unreachable,
                );
                broken = true;
                break;
            }
            if let Err(e) = held.ping().await {
                c.failed(&mut t, &e);
                broken = true;
                break;
            }
            awaiting_pong = true;
            ping_at = Some(Instant::now() + keepalive);
        }
    }
    settle(&c, &mut t, reported, inflight.len(), broken);
    if !broken {
        held.close().await;
    }
    t
}

/// A message acknowledged (or, at QoS 0, written) now: its latency from when it was due.
fn done(t: &mut Totals, origin: Instant) {
    let now = Instant::now();
    t.acked += 1;
    t.last_message = Some(now);
    t.record(PUBLISH, now - origin);
}

/// When each PUBLISH in flight was due, by packet id: a slot per id, not a hash map, since
/// rumqttc's ids run through 1..=window and every PUBACK looks one up.
#[derive(Default)]
struct InFlight {
    due: Vec<Option<Instant>>,
    len: usize,
}

impl InFlight {
    fn insert(&mut self, pkid: u16, origin: Instant) {
        let i = usize::from(pkid);
        if i >= self.due.len() {
            self.due.resize(i + 1, None);
        }
        if self.due[i].replace(origin).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, pkid: u16) -> Option<Instant> {
        let origin = self.due.get_mut(usize::from(pkid))?.take()?;
        self.len -= 1;
        Some(origin)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The first packet id after `last` (in 1..=`window`, wrapping) with nothing in flight.
    /// There must be one: fewer than `window` in flight.
    fn free_after(&self, last: u16, window: u16) -> u16 {
        let mut id = last;
        loop {
            id = if id >= window { 1 } else { id + 1 };
            if self.due.get(usize::from(id)).is_none_or(|d| d.is_none()) {
                return id;
            }
        }
    }
}

/// Counts one event of a publishing client; false once the connection is gone.
fn on_event(
    c: &Client,
    t: &mut Totals,
    qos: Qos,
    ev: anyhow::Result<Event>,
    unwritten: &mut VecDeque<Instant>,
    inflight: &mut InFlight,
) -> bool {
    match ev {
        // rumqttc writes requests in the order they were queued: the k-th PUBLISH written is
        // the k-th queued.
        Ok(Event::Written { pkid }) => {
            if let Some(origin) = unwritten.pop_front() {
                if qos == Qos::AtMostOnce {
                    done(t, origin);
                } else {
                    inflight.insert(pkid, origin);
                }
            }
        }
        Ok(Event::Acked { pkid }) => {
            workers::read(1);
            if let Some(origin) = inflight.remove(pkid) {
                done(t, origin);
            }
        }
        Ok(Event::PublishRefused { pkid, reason }) => {
            inflight.remove(pkid);
            c.problem(t, format!("publish refused: {reason}"), Exit::Rejected);
        }
        Ok(Event::ConnectionLost | Event::DisconnectSent) | Err(_) => {
            lost(c, t, ev);
            return false;
        }
        Ok(_) => {}
    }
    true
}

/// `bench sub`: subscribe, then read each message's header: end-to-end latency from its send
/// time, and its place in its publisher's stream.
pub async fn subscribe(mut c: Client, o: &SubOptions) -> Totals {
    let mut t = Totals::for_client(c.sink.clone());
    let Some(mut session) = c.open(&mut t).await else {
        return t;
    };
    let mut stop = c.stop.clone();
    let mut streams = Streams::default();
    let sub = Subscription::new(o.topic.expand(c.index), o.qos);
    let mut early = Vec::new();
    let codes = session
        .subscribe_and_wait(&[sub], c.end, &mut c.interrupt, |ev| early.push(ev))
        .await;
    match codes {
        Ok(Wait::Ready(codes)) => {
            if let Some(Err(reason)) = codes.into_iter().next() {
                c.problem(
                    &mut t,
                    format!("subscription refused: {reason}"),
                    Exit::Rejected,
                );
                let _ = session.close().await;
                return t;
            }
        }
        Ok(Wait::Timeout | Wait::Interrupted) => {
            let _ = session.close().await;
            return t;
        }
        Err(e) => {
            c.failed(&mut t, &e);
            return t;
        }
    }
    c.counters.subscribed.fetch_add(1, Relaxed);
    c.counters.ready.notify_one();
    let mut broken = false;
    for ev in early {
        received(&c, &mut t, &mut streams, ev);
    }
    while o.count.is_none_or(|n| t.received < n) {
        tokio::select! {
            biased;
            ev = session.recv() => match ev {
                Ok(Event::ConnectionLost | Event::DisconnectSent) | Err(_) => {
                    lost(&c, &mut t, ev);
                    broken = true;
                    break;
                }
                Ok(ev) => received(&c, &mut t, &mut streams, ev),
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    t.lost = streams.lost();
    t.duplicates = streams.duplicates;
    t.reordered = streams.reordered;
    if t.lost > 0 {
        t.exit = t.exit.or(Some(Exit::Rejected));
    }
    if !broken {
        let _ = session.close().await;
    }
    t
}

fn received(c: &Client, t: &mut Totals, streams: &mut Streams, ev: Event) {
    let Event::Message(m) = ev else {
        return;
    };
    workers::read(1);
    let now = unix_us(SystemTime::now());
    let at = Instant::now();
    t.first_message.get_or_insert(at);
    t.last_message = Some(at);
    t.received += 1;
    c.counters.received.fetch_add(1, Relaxed);
    match Header::decode(&m.payload) {
        Some(h) => {
            if streams.arrived(h.publisher, h.seq) != Arrival::Duplicate {
                // A clock behind the publisher's reads as no time at all, not a negative one.
                t.record_us(END_TO_END, now.saturating_sub(h.sent_us));
            }
        }
        None => t.without_header += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_keeps_one_due_time_per_packet_id() {
        let mut f = InFlight::default();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(1);
        f.insert(3, t0);
        f.insert(100, t1);
        assert_eq!(f.len(), 2);
        // An id used again before its acknowledgement (rumqttc holds such a PUBLISH back):
        // the later due time, still one in flight.
        f.insert(3, t1);
        assert_eq!(f.len(), 2);
        assert_eq!(f.remove(3), Some(t1));
        assert_eq!(f.remove(3), None, "acknowledged twice");
        assert_eq!(f.remove(65535), None, "an id never used");
        assert_eq!(f.len(), 1);
        assert_eq!(f.remove(100), Some(t1));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn packet_ids_cycle_through_the_window_skipping_those_in_flight() {
        let mut f = InFlight::default();
        let t0 = Instant::now();
        assert_eq!(f.free_after(0, 3), 1);
        f.insert(1, t0);
        f.insert(2, t0);
        assert_eq!(f.free_after(2, 3), 3);
        f.insert(3, t0);
        f.remove(2);
        // Past the window's end it wraps, and 1 is still in flight.
        assert_eq!(f.free_after(3, 3), 2);
        assert_eq!(f.free_after(0, 1000), 2);
    }
}
