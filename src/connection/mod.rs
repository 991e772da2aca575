//! One connection interface for every subcommand. rumqttc's MQTT 3.1.1 (v4) and 5.0 (v5) APIs
//! are separate type trees; `v4.rs` and `v5.rs` translate them to the neutral types here, so
//! `pub`, `sub` and `unsub` are written once.
//!
//! Ownership: the `Events` half owns rumqttc's event loop and must be polled by one task; the
//! `Client` half only queues requests and may be cloned into producer tasks.

mod aliases;
mod errors;
mod held;
mod limits;
mod mqtt;
mod pacing;
pub mod proxy;
mod publish_bursts;
mod relay;
mod replays;
mod session;
pub mod settings;
mod tls;
mod transport;
pub mod url;
mod v4;
mod v5;

use std::time::Duration;

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use tokio::sync::mpsc;

pub use held::{Held, Steps};
pub use mqtt::{
    Ack, BrokerLimits, ConnectProperties, Event, Message, Properties, Protocol, Qos, Reason,
    RetainHandling, SubscribeProperties, Subscription, Version,
};
pub use session::{sleep_until, Session, Wait};
pub use settings::Settings;
use transport::Peer;

use crate::exit::{fail, usage, Exit};

/// MQTT's largest packet: a 268 435 455-byte remaining length plus a 5-byte fixed header.
/// rumqttc defaults to 10 KiB each way; a CLI must carry whatever the broker accepts.
pub const MAX_PACKET: usize = 268_435_460;

#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

struct Events {
    inner: EventLoop,
    /// MQTT 3.1.1 only: see publish_bursts.rs.
    publish_bursts: Option<publish_bursts::PublishBursts>,
    peer: Peer,
    reconnect: settings::Reconnect,
    /// Failed reconnect attempts in a row; Some while the connection is down.
    lost: Option<u64>,
    /// The wait before the first reconnect attempt, taken on the call after `ConnectionLost`.
    pending_delay: Option<Duration>,
    /// The packet id of the last PUBLISH written, which tells the order in which the ids of
    /// unacknowledged ones were handed out (they cycle 1..=inflight).
    last_written: u16,
    /// None: `Settings::paced_reads` is off.
    pacing: Option<pacing::Pacing>,
    /// MQTT 3.1.1 only: see `Bursts`.
    bursts: Option<Bursts>,
    /// MQTT 5 streams: the topic aliases announced on this connection.
    aliases: Option<Arc<aliases::Aliases>>,
}

/// A burst of acknowledgements: the first goes through rumqttc's request queue (which wakes
/// its event loop), the rest are written right behind it with one flush (`v4::write_acks`).
/// rumqttc writes and flushes every request on its own: a system call and a TCP segment per
/// acknowledgement, which made `sub -q 1` wake the broker once per message.
type Burst = (Ack, Vec<Ack>);

struct Bursts {
    rx: mpsc::UnboundedReceiver<Burst>,
    /// Sent, and their first acknowledgement not yet written.
    waiting: VecDeque<Burst>,
}

impl Bursts {
    /// rumqttc has written the acknowledgement of `pkid`: the rest of its burst, if it led one.
    fn after(&mut self, pkid: u16) -> Option<Vec<Ack>> {
        while let Ok(b) = self.rx.try_recv() {
            self.waiting.push_back(b);
        }
        match self.waiting.front() {
            Some((first, _)) if first.pkid == pkid => {
                self.waiting.pop_front().map(|(_, rest)| rest)
            }
            _ => None,
        }
    }

    /// The connection is gone, and with it the packet ids.
    fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.waiting.clear();
    }
}

enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

struct Connected {
    pub client: Client,
    pub events: Events,
    pub session_present: bool,
    /// The first CONNACK's MQTT 5 limits (None under 3.1.1).
    pub limits: Option<BrokerLimits>,
    /// See `Session::window`.
    pub window: usize,
    /// Where `Session::ack_all` sends the tail of a burst (MQTT 3.1.1 only).
    pub bursts: Option<mpsc::UnboundedSender<Burst>>,
    /// See `Events::aliases`.
    pub aliases: Option<Arc<aliases::Aliases>>,
    /// Where `Session::publish_burst` sends the rest of a burst (MQTT 3.1.1 only).
    pub publish_bursts: Option<publish_bursts::Queue>,
}

/// Requests queued ahead of the event loop. A full queue makes `Client::publish` wait, which is
/// the back-pressure a stdin producer needs.
pub const REQUEST_QUEUE: usize = 1024;

/// Connects and waits for CONNACK. Any failure here is final: polling again would make rumqttc
/// reconnect, and a refused CONNACK must not be retried.
async fn connect(settings: &Settings) -> Result<Connected> {
    tracing::debug!(?settings, "connecting");
    let wire = transport::wire(settings)?;
    // Through a proxy, the proxy resolves the name; it may not resolve here at all.
    if settings.proxy.is_none() {
        resolve(settings).await?;
    }
    let (client, inner) = match settings.protocol {
        Protocol::V311 => {
            let (c, e) = v4::new(settings, &wire, REQUEST_QUEUE);
            (Client::V4(c), EventLoop::V4(Box::new(e)))
        }
        Protocol::V5 => {
            let (c, e) = v5::new(settings, &wire, REQUEST_QUEUE);
            (Client::V5(c), EventLoop::V5(Box::new(e)))
        }
    };
    let (bursts_tx, bursts) = match settings.protocol {
        Protocol::V311 => {
            let (tx, rx) = mpsc::unbounded_channel();
            let waiting = VecDeque::new();
            (Some(tx), Some(Bursts { rx, waiting }))
        }
        // rumqttc's v5 event loop keeps its socket to itself: one write per acknowledgement.
        Protocol::V5 => (None, None),
    };
    let (publish_bursts_tx, publish_bursts) = match settings.protocol {
        Protocol::V311 => {
            let (queue, bursts) = publish_bursts::queue();
            (Some(queue), Some(bursts))
        }
        // rumqttc's v5 event loop keeps its socket to itself: one write per PUBLISH.
        Protocol::V5 => (None, None),
    };
    let mut events = Events {
        inner,
        publish_bursts,
        peer: wire.peer,
        reconnect: settings.reconnect.clone(),
        lost: None,
        pending_delay: None,
        last_written: 0,
        pacing: settings.paced_reads.then(pacing::Pacing::default),
        bursts,
        aliases: (settings.topic_aliases && settings.protocol == Protocol::V5)
            .then(|| Arc::new(aliases::Aliases::default())),
    };
    let timeout = settings.connect_timeout;
    let (session_present, limits) = tokio::time::timeout(timeout, async {
        loop {
            match events.poll(false).await? {
                Event::ConnAck {
                    session_present,
                    limits,
                } => return Ok::<_, anyhow::Error>((session_present, limits)),
                other => tracing::debug!(?other, "event before CONNACK"),
            }
        }
    })
    .await
    .map_err(|_| errors::connect_timeout(&events.peer, Some(timeout)))??;
    events.release_spare_capacity();
    tracing::debug!(
        session_present,
        ?limits,
        "CONNACK received: connected to {}",
        events.peer.endpoint
    );
    if let Some(l) = &limits {
        // rumqttc adopts both: the keepalive for its pings, the id for this connection.
        if let Some(secs) = l.server_keep_alive {
            tracing::debug!("the broker set the keepalive to {secs} s (Server Keep Alive)");
        }
        if let Some(id) = &l.assigned_client_id {
            tracing::debug!("the broker assigned the client id '{id}'");
        }
    }
    let window = events.window(limits.as_ref());
    if let Some(a) = &events.aliases {
        a.connected(limits.as_ref().and_then(|l| l.topic_alias_maximum));
    }
    Ok(Connected {
        client,
        aliases: events.aliases.clone(),
        events,
        session_present,
        limits,
        window,
        bursts: bursts_tx,
        publish_bursts: publish_bursts_tx,
    })
}

/// Resolving first gives DNS failures their own message; rumqttc reports them as an
/// uncategorised I/O error.
/// The broker's addresses; an error in words when the name does not resolve in time.
async fn resolve(settings: &Settings) -> Result<Vec<std::net::SocketAddr>> {
    let lookup = async {
        tokio::net::lookup_host((settings.host.as_str(), settings.port))
            .await
            .map(|addrs| addrs.collect::<Vec<_>>())
    };
    match tokio::time::timeout(settings.connect_timeout, lookup).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(fail(
            Exit::Unreachable,
            format!(
                "cannot resolve host '{}': check the name given with -h or -L",
                settings.host
            ),
        )),
        Err(_) => Err(fail(
            Exit::Unreachable,
            format!(
                "looking up host '{}' took longer than --connect-timeout: check the name and this machine's DNS",
                settings.host
            ),
        )),
    }
}

impl Events {
    /// The next event. A lost connection is retried with backoff when the settings allow it
    /// (`ConnectionLost`, then `Reconnected`); an error means the connection is gone for good.
    async fn next(&mut self) -> Result<Event> {
        if let Some(delay) = self.pending_delay.take() {
            tokio::time::sleep(delay).await;
        }
        if let Some(pause) = self.pacing.as_mut().and_then(pacing::Pacing::pause) {
            tokio::time::sleep(pause).await;
        }
        loop {
            let connected = self.lost.is_none();
            // Whether the poll had to wait: then the socket had been read empty (pacing.rs).
            let mut waited = false;
            let polled = {
                let mut poll = std::pin::pin!(self.poll(connected));
                std::future::poll_fn(|cx| {
                    let p = std::future::Future::poll(poll.as_mut(), cx);
                    waited |= p.is_pending();
                    p
                })
                .await
            };
            let err = match polled {
                Ok(Event::ConnAck {
                    session_present,
                    limits,
                }) if self.lost.is_some() => {
                    self.lost = None;
                    if let Some(a) = &self.aliases {
                        a.connected(limits.as_ref().and_then(|l| l.topic_alias_maximum));
                    }
                    if session_present {
                        self.prepare_replays();
                    } else {
                        let stale = match &mut self.inner {
                            EventLoop::V4(el) => replays::forget_failed_writes_v4(el),
                            EventLoop::V5(el) => replays::forget_failed_writes_v5(el),
                        };
                        if stale > 0 {
                            tracing::debug!("{stale} PUBLISH writes failed with the connection");
                        }
                    }
                    tracing::warn!(
                        "reconnected to {} ({})",
                        self.peer.endpoint,
                        if session_present {
                            "session resumed"
                        } else {
                            "new session"
                        }
                    );
                    return Ok(Event::Reconnected { session_present });
                }
                Ok(ev) => {
                    match &ev {
                        Event::Written { pkid } if *pkid != 0 => self.last_written = *pkid,
                        Event::Message(m) if m.qos == Qos::AtMostOnce => {
                            if let Some(p) = &mut self.pacing {
                                p.received(tokio::time::Instant::now(), waited);
                            }
                        }
                        _ => {}
                    }
                    return Ok(ev);
                }
                Err(e) => e,
            };
            // Before anything is awaited: see aliases.rs.
            if let (Some(a), EventLoop::V5(el)) = (&self.aliases, &mut self.inner) {
                a.lost(&mut el.pending);
            }
            // Only "cannot reach" failures are worth retrying: a refused CONNACK or a
            // certificate problem will not go away by itself.
            if !self.reconnect.enabled || crate::exit::exit_for(&err) != Exit::Unreachable {
                return Err(err);
            }
            let attempt = self.lost.map_or(0, |n| n + 1);
            if self.reconnect.attempts.is_some_and(|max| attempt >= max) {
                return Err(err.context(format!("gave up after {attempt} reconnect attempts")));
            }
            let delay = backoff(&self.reconnect, attempt);
            tracing::warn!("{err:#}; reconnecting in {:.1}s", delay.as_secs_f64());
            let first = self.lost.is_none();
            self.lost = Some(attempt);
            if let Some(b) = &mut self.bursts {
                b.clear();
            }
            if first {
                // Tell the caller before retrying, while what it queued is still known lost.
                self.pending_delay = Some(delay);
                return Ok(Event::ConnectionLost);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// How many QoS 1/2 PUBLISHes rumqttc keeps in flight at most: its packet ids cycle
    /// through 1..=this many. Under MQTT 5 the broker's Receive Maximum lowers it.
    fn window(&self, limits: Option<&BrokerLimits>) -> usize {
        let n = match &self.inner {
            EventLoop::V4(el) => el.mqtt_options.inflight(),
            EventLoop::V5(el) => {
                let upper = el
                    .options
                    .get_outgoing_inflight_upper_limit()
                    .unwrap_or(u16::MAX);
                limits
                    .and_then(|l| l.receive_maximum)
                    .map_or(upper, |r| r.min(upper))
            }
        };
        usize::from(n)
    }

    /// rumqttc makes room for 100 events per connection up front (about 14 KB), most of what an
    /// idle connection holds; `bench conn` holds thousands. The queue grows again as needed.
    fn release_spare_capacity(&mut self) {
        match &mut self.inner {
            EventLoop::V4(el) => el.state.events.shrink_to_fit(),
            EventLoop::V5(el) => el.state.events.shrink_to_fit(),
        }
    }

    /// A resumed session's unacknowledged PUBLISHes (and PUBRELs) wait in rumqttc's pending
    /// queue, to go out again before anything new. Two things need mending first:
    /// - rumqttc sends them with DUP cleared, but a re-delivery must carry it [MQTT-3.3.1-1];
    /// - its v5 queue is in packet-id order, not the order they were sent [MQTT-4.6.0-1]: once
    ///   ids wrapped (1..=inflight), newer messages would overtake older ones.
    ///
    /// Ids are handed out in sequence, so the ones after the last written id are the oldest.
    /// Only entries with an id were sent before: requests that never left the queue get theirs
    /// when they go out, keep their place after the replays, and get no DUP.
    fn prepare_replays(&mut self) {
        let replays = match &mut self.inner {
            EventLoop::V4(el) => replays::prepare_v4(el, self.last_written),
            EventLoop::V5(el) => replays::prepare_v5(el, self.last_written),
        };
        let queued = match &self.inner {
            EventLoop::V4(el) => el.pending.len(),
            EventLoop::V5(el) => el.pending.len(),
        } - replays;
        tracing::debug!(
            "{replays} unacknowledged PUBLISH/PUBREL to send again, oldest first, then {queued} \
             requests never sent"
        );
    }

    async fn poll(&mut self, connected: bool) -> Result<Event> {
        let ev = match &mut self.inner {
            EventLoop::V4(el) => match el.poll().await {
                Ok(ev) => {
                    if let rumqttc::Event::Outgoing(rumqttc::Outgoing::AwaitAck(pkid)) = ev {
                        replays::collision(pkid);
                    }
                    let rest = v4::ack_written(&ev)
                        .and_then(|pkid| self.bursts.as_mut().and_then(|b| b.after(pkid)));
                    if let Some(rest) = rest {
                        // Bounded as rumqttc bounds its own flushes; what is left in the buffer
                        // goes out with rumqttc's next write.
                        let limit = Duration::from_secs(10);
                        match tokio::time::timeout(limit, v4::write_acks(el, &rest)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!("writing acknowledgements: {e}"),
                            Err(_) => tracing::debug!("writing acknowledgements: timed out"),
                        }
                    }
                    let rest = self.publish_bursts.as_mut().and_then(|b| b.after(&ev));
                    if let (Some(rest), Some(b)) = (rest, self.publish_bursts.as_mut()) {
                        // Bounded as rumqttc bounds its own flushes; an error shows at the
                        // next poll, as the connection's.
                        let limit = Duration::from_secs(10);
                        match tokio::time::timeout(limit, b.write(el, rest)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!("writing a burst of PUBLISHes: {e}"),
                            Err(_) => tracing::debug!("writing a burst of PUBLISHes: timed out"),
                        }
                    }
                    v4::event(ev)
                }
                Err(e) => {
                    if let Some(b) = &mut self.publish_bursts {
                        b.clear();
                    }
                    return Err(v4::error(e, connected, &self.peer));
                }
            },
            EventLoop::V5(el) => match el.poll().await {
                Ok(ev) => {
                    if let rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::AwaitAck(pkid)) = ev {
                        replays::collision(pkid);
                    }
                    v5::event(ev)
                }
                Err(e) => return Err(v5::error(e, connected, &self.peer)),
            },
        };
        if let Event::ConnAck {
            session_present: true,
            ..
        } = ev
        {
            // A resumed session may hold QoS 2 messages this client already answered with
            // PUBREC (in an earlier run, or before a lost connection): the broker goes on with
            // PUBREL, which MQTT says to answer with PUBCOMP. rumqttc forgets those packet
            // ids with the connection and treats such a PUBREL as a protocol error, so the
            // session could never be resumed; marking every id as awaiting PUBREL makes it
            // answer them all, as the spec asks.
            match &mut self.inner {
                EventLoop::V4(el) => v4::expect_any_pubrel(el),
                EventLoop::V5(el) => v5::expect_any_pubrel(el),
            }
        }
        Ok(ev)
    }

    /// After our DISCONNECT: wait (bounded) for the broker to close the socket, so it has
    /// processed the DISCONNECT before we exit and does not publish the will. Never
    /// reconnects: the broker closing is what we wait for.
    async fn drain_after_disconnect(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while let Some(ev) = self.poll_until_closed().await {
                tracing::trace!(?ev, "event after DISCONNECT");
            }
        })
        .await;
    }

    /// One poll whose error is only the end of the wait: not put into words (an anyhow error
    /// captures a backtrace when RUST_BACKTRACE is set, a cost on every single `pub`).
    async fn poll_until_closed(&mut self) -> Option<Event> {
        match &mut self.inner {
            EventLoop::V4(el) => el.poll().await.ok().map(v4::event),
            EventLoop::V5(el) => el.poll().await.ok().map(v5::event),
        }
    }
}

/// Exponential backoff with jitter: `initial × 2^attempt`, capped, then scaled by a random
/// factor in [0.5, 1] so that many clients cut off together do not return together.
fn backoff(policy: &settings::Reconnect, attempt: u64) -> Duration {
    let exp = policy
        .initial
        .saturating_mul(1u32 << attempt.min(20) as u32)
        .min(policy.max);
    exp.mul_f64(rand::random_range(0.5..=1.0))
}

fn queue_closed() -> anyhow::Error {
    fail(
        Exit::Other,
        "the connection's request queue closed unexpectedly",
    )
}

fn to_qos4(qos: Qos) -> rumqttc::QoS {
    match qos {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn to_qos5(qos: Qos) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a PUBLISH; it is on the wire only once the event loop has been polled far enough
    /// (`Event::Written` for QoS 0, `Event::Acked` for QoS 1/2).
    async fn publish(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        properties: Option<Properties>,
    ) -> Result<()> {
        match self {
            Client::V4(_)
                if properties
                    .as_ref()
                    .is_some_and(|p| *p != Properties::default()) =>
            {
                Err(usage("PUBLISH properties are an MQTT 5 feature: add -V 5"))
            }
            Client::V4(c) => c
                .publish_bytes(topic, to_qos4(qos), retain, payload)
                .await
                .map_err(|_| queue_closed()),
            Client::V5(c) => match properties {
                Some(p) => c
                    .publish_bytes_with_properties(
                        topic,
                        to_qos5(qos),
                        retain,
                        payload,
                        v5::publish_properties(p),
                    )
                    .await
                    .map_err(|_| queue_closed()),
                None => c
                    .publish_bytes(topic, to_qos5(qos), retain, payload)
                    .await
                    .map_err(|_| queue_closed()),
            },
        }
    }

    /// A PUBLISH whose topic may go out as its alias (aliases.rs); MQTT 5 only. Queued
    /// without waiting, so that no other PUBLISH can be decided in between: when the request
    /// queue is full it waits like any other, with its whole topic and no alias.
    async fn publish_aliased(
        &self,
        aliases: &aliases::Aliases,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        properties: Option<Properties>,
    ) -> Result<()> {
        use aliases::TopicAs;
        use rumqttc::v5::{ClientError, Request};
        let Client::V5(c) = self else {
            return self.publish(topic, qos, retain, payload, properties).await;
        };
        let given = properties.as_ref().and_then(|p| p.topic_alias);
        let mut properties = properties.map(v5::publish_properties);
        let queued = aliases.send(topic, given, |how| {
            let (name, alias) = match *how {
                TopicAs::Whole => (topic, None),
                TopicAs::Announce(a) => (topic, Some(a)),
                TopicAs::Alias(a) => ("", Some(a)),
            };
            let properties = match (properties.take(), alias) {
                (Some(mut p), _) => {
                    p.topic_alias = alias;
                    Some(p)
                }
                (None, Some(a)) => Some(rumqttc::v5::mqttbytes::v5::PublishProperties {
                    topic_alias: Some(a),
                    ..Default::default()
                }),
                (None, None) => None,
            };
            match properties {
                Some(p) => c.try_publish_with_properties(name, to_qos5(qos), retain, payload, p),
                None => c.try_publish(name, to_qos5(qos), retain, payload),
            }
            .map_err(Box::new)
        });
        match queued.map_err(|e| *e) {
            Ok(()) => Ok(()),
            Err(ClientError::TryRequest(Request::Publish(p))) => {
                let properties = p.properties.map(|mut props| {
                    props.topic_alias = None;
                    props
                });
                match properties {
                    Some(props) => {
                        c.publish_bytes_with_properties(topic, p.qos, p.retain, p.payload, props)
                            .await
                    }
                    None => c.publish_bytes(topic, p.qos, p.retain, p.payload).await,
                }
                .map_err(|_| queue_closed())
            }
            Err(_) => Err(queue_closed()),
        }
    }

    /// One SUBSCRIBE for every filter. The options and properties are MQTT 5's: the CLI
    /// refuses them under 3.1.1 before we get here.
    async fn subscribe(&self, subs: &[Subscription], props: &SubscribeProperties) -> Result<()> {
        match self {
            Client::V4(c) => {
                let subs = subs
                    .iter()
                    .map(|s| rumqttc::SubscribeFilter::new(s.filter.clone(), to_qos4(s.qos)));
                c.subscribe_many(subs).await.map_err(|_| queue_closed())
            }
            Client::V5(c) => {
                let subs = subs.iter().map(v5::filter);
                if *props == SubscribeProperties::default() {
                    c.subscribe_many(subs).await
                } else {
                    c.subscribe_many_with_properties(subs, v5::subscribe_properties(props))
                        .await
                }
                .map_err(|_| queue_closed())
            }
        }
    }

    /// One UNSUBSCRIBE per filter: rumqttc's v3.1.1 client cannot put several in one packet.
    async fn unsubscribe(&self, filter: &str, user_properties: &[(String, String)]) -> Result<()> {
        match self {
            Client::V4(c) => c.unsubscribe(filter).await.map_err(|_| queue_closed()),
            Client::V5(c) if user_properties.is_empty() => {
                c.unsubscribe(filter).await.map_err(|_| queue_closed())
            }
            Client::V5(c) => {
                let props = rumqttc::v5::mqttbytes::v5::UnsubscribeProperties {
                    user_properties: user_properties.to_vec(),
                };
                c.unsubscribe_with_properties(filter, props)
                    .await
                    .map_err(|_| queue_closed())
            }
        }
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2) for a received message, under manual acknowledgements.
    async fn ack(&self, ack: Ack) -> Result<()> {
        match self {
            Client::V4(c) => {
                let mut p = rumqttc::Publish::new("", to_qos4(ack.qos), Vec::new());
                p.pkid = ack.pkid;
                c.ack(&p).await.map_err(|_| queue_closed())
            }
            Client::V5(c) => {
                let mut p = rumqttc::v5::mqttbytes::v5::Publish::new(
                    "",
                    to_qos5(ack.qos),
                    Vec::new(),
                    None,
                );
                p.pkid = ack.pkid;
                c.ack(&p).await.map_err(|_| queue_closed())
            }
        }
    }

    async fn disconnect(&self) -> Result<()> {
        match self {
            Client::V4(c) => c.disconnect().await.map_err(|_| queue_closed()),
            Client::V5(c) => c.disconnect().await.map_err(|_| queue_closed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = settings::Reconnect {
            enabled: true,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: None,
        };
        for (attempt, full) in [(0, 1), (1, 2), (3, 8), (5, 32), (6, 60), (40, 60)] {
            let d = backoff(&policy, attempt);
            let full = Duration::from_secs(full);
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}
