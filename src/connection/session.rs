//! The one way every command drives a connection: the event loop runs on a task of its own
//! (the driver) and hands its events over a channel, so a wait can be given up at a deadline
//! or a signal without cancelling rumqttc half-way through a poll (rumqttc's `poll` is not
//! documented as cancel-safe; see shared notes). Requests go out through the client half.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::aliases::Aliases;
use super::{
    connect, Ack, BrokerLimits, Client, Event, Events, Properties, Qos, Reason, Settings,
    SubscribeProperties, Subscription,
};
use crate::exit::{fail, Exit};
use crate::signals::Interrupt;

/// How long to wait for the broker to close the socket after our DISCONNECT.
const DRAIN: Duration = Duration::from_secs(1);

/// What a wait ended with: the thing waited for, the deadline, or a signal.
#[derive(Debug)]
pub enum Wait<T> {
    Ready(T),
    Timeout,
    Interrupted,
}

pub struct Session {
    client: Client,
    rx: mpsc::UnboundedReceiver<Result<Event>>,
    driver: JoinHandle<()>,
    /// See `Session::gone`.
    gone: bool,
    /// See `Session::publish_burst`.
    publish_bursts: Option<super::publish_bursts::Queue>,
    /// Received QoS 1/2 messages wait for `ack` (else rumqttc acknowledges them on arrival).
    manual_acks: bool,
    /// See `connection::Bursts`.
    bursts: Option<mpsc::UnboundedSender<(Ack, Vec<Ack>)>>,
    /// MQTT 5 streams: see aliases.rs.
    aliases: Option<Arc<Aliases>>,
    /// The broker resumed a session it kept for this client id.
    pub session_present: bool,
    /// The first CONNACK's MQTT 5 limits (None under 3.1.1).
    pub limits: Option<BrokerLimits>,
    /// rumqttc's in-flight window for QoS 1/2 PUBLISHes (its packet ids cycle through
    /// 1..=window). A caller that streams must not have more than this many queued and
    /// unacknowledged at once: when a connection breaks, rumqttc moves what waits in its
    /// request queue into its pending queue, and after a resumed session it sends that queue
    /// without flow control right behind the replays. Beyond the window a new PUBLISH gets the
    /// id of one still in flight; rumqttc holds it back (`Outgoing::AwaitAck`) and drops it when
    /// the next one collides too: lost, and never acknowledged.
    pub window: usize,
}

impl Session {
    /// Connects and waits for CONNACK, unless a signal or `deadline` comes first.
    pub async fn open(
        settings: &Settings,
        interrupt: &mut Interrupt,
        deadline: Option<Instant>,
    ) -> Result<Wait<Session>> {
        let connected = tokio::select! {
            c = connect(settings) => c?,
            _ = interrupt.wait() => return Ok(Wait::Interrupted),
            _ = sleep_until(deadline) => return Ok(Wait::Timeout),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(connected.events, tx));
        Ok(Wait::Ready(Session {
            client: connected.client,
            rx,
            driver,
            gone: false,
            publish_bursts: connected.publish_bursts,
            manual_acks: settings.manual_acks,
            bursts: connected.bursts,
            aliases: connected.aliases,
            session_present: connected.session_present,
            limits: connected.limits,
            window: connected.window,
        }))
    }

    /// The next event; cancel-safe, for `select!`. An error means the connection is gone for
    /// good (a lost one that may be retried comes as `Event::ConnectionLost`).
    pub async fn recv(&mut self) -> Result<Event> {
        let ev = match self.rx.recv().await {
            Some(ev) => ev,
            None => Err(fail(Exit::Unreachable, "the connection closed")),
        };
        self.gone |= ev.is_err();
        ev
    }

    /// An event that is already waiting, without waiting for one.
    pub fn try_recv(&mut self) -> Option<Result<Event>> {
        let ev = self.rx.try_recv().ok()?;
        self.gone |= ev.is_err();
        Some(ev)
    }

    /// Whether the connection is gone for good: an error came out of `recv`. Not every error
    /// of a Session's calls means that (a refused subscription leaves it open), nor does every
    /// refusal leave it open (an MQTT 5 broker may end it with a DISCONNECT that refuses).
    pub fn gone(&self) -> bool {
        self.gone
    }

    /// The next event, unless `deadline` (if any) passes or a signal comes first.
    pub async fn next(
        &mut self,
        deadline: Option<Instant>,
        interrupt: &mut Interrupt,
    ) -> Result<Wait<Event>> {
        tokio::select! {
            biased;
            ev = self.recv() => ev.map(Wait::Ready),
            _ = interrupt.wait() => Ok(Wait::Interrupted),
            _ = sleep_until(deadline) => Ok(Wait::Timeout),
        }
    }

    /// Queues a PUBLISH; it is on the wire once `Event::Written` (QoS 0) or acknowledged once
    /// `Event::Acked` (QoS 1/2) comes. Back-pressure: waits while the request queue is full.
    pub async fn publish(&self, topic: &str, qos: Qos, retain: bool, payload: Bytes) -> Result<()> {
        self.queue(topic, qos, retain, payload, None).await
    }

    /// A stream's PUBLISH may name its topic by alias (aliases.rs).
    async fn queue(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        properties: Option<Properties>,
    ) -> Result<()> {
        match &self.aliases {
            Some(a) => {
                self.client
                    .publish_aliased(a, topic, qos, retain, payload, properties)
                    .await
            }
            None => {
                self.client
                    .publish(topic, qos, retain, payload, properties)
                    .await
            }
        }
    }

    /// Queues PUBLISHes to one topic, in order: under MQTT 3.1.1 written with one flush after
    /// the first (publish_bursts.rs), else one by one. Each comes as `Event::Written` and
    /// `Event::Acked` as with [`Session::publish`]. A session that publishes bursts publishes
    /// nothing else, and never more at once than its in-flight window allows.
    pub async fn publish_burst(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payloads: Vec<Bytes>,
    ) -> Result<()> {
        let mut payloads = payloads.into_iter();
        let Some(queue) = &self.publish_bursts else {
            for payload in payloads {
                self.client
                    .publish(topic, qos, retain, payload, None)
                    .await?;
            }
            return Ok(());
        };
        let Some(first) = payloads.next() else {
            return Ok(());
        };
        let rest = payloads
            .map(|p| super::publish_bursts::publish(topic, qos, retain, p))
            .collect();
        // The rest first: the driver looks for it once rumqttc has written the first.
        super::publish_bursts::push(queue, rest);
        self.client.publish(topic, qos, retain, first, None).await
    }

    /// A PUBLISH with MQTT 5 properties; refused as a usage error under 3.1.1.
    pub async fn publish_with(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        properties: Properties,
    ) -> Result<()> {
        self.queue(topic, qos, retain, payload, Some(properties))
            .await
    }

    /// Acknowledges a received message (PUBACK or PUBREC), in the order they arrived: MQTT
    /// requires it, and the request queue keeps it. Nothing to do without manual acks.
    pub async fn ack(&self, ack: Ack) -> Result<()> {
        if self.manual_acks {
            self.client.ack(ack).await?;
        }
        Ok(())
    }

    /// Acknowledges received messages, in the order given (the order they arrived): under
    /// MQTT 3.1.1 with one write for them all.
    pub async fn ack_all(&self, mut acks: Vec<Ack>) -> Result<()> {
        if !self.manual_acks || acks.is_empty() {
            return Ok(());
        }
        match &self.bursts {
            Some(tx) if acks.len() > 1 => {
                let rest = acks.split_off(1);
                // The rest first: the driver looks for it once rumqttc has written the first.
                let _ = tx.send((acks[0], rest));
                self.client.ack(acks[0]).await
            }
            _ => {
                for ack in acks {
                    self.client.ack(ack).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn subscribe(
        &self,
        subs: &[Subscription],
        props: &SubscribeProperties,
    ) -> Result<()> {
        self.client.subscribe(subs, props).await
    }

    /// Subscribes and waits for the SUBACK: one entry per filter, in order. Events that come
    /// first (retained or queued messages) are handed to `early`.
    pub async fn subscribe_and_wait(
        &mut self,
        subs: &[Subscription],
        deadline: Option<Instant>,
        interrupt: &mut Interrupt,
        mut early: impl FnMut(Event),
    ) -> Result<Wait<Vec<Result<Qos, Reason>>>> {
        self.subscribe(subs, &SubscribeProperties::default())
            .await?;
        loop {
            match self.next(deadline, interrupt).await? {
                Wait::Ready(Event::SubAck(codes)) => return Ok(Wait::Ready(codes)),
                Wait::Ready(ev) => early(ev),
                Wait::Timeout => return Ok(Wait::Timeout),
                Wait::Interrupted => return Ok(Wait::Interrupted),
            }
        }
    }

    /// Unsubscribes from one filter and waits for its UNSUBACK (v3.1.1 carries no code: `Ok`).
    /// Other events meanwhile are dropped: nothing that waits for an UNSUBACK reads messages.
    pub async fn unsubscribe_and_wait(
        &mut self,
        filter: &str,
        user_properties: &[(String, String)],
        deadline: Option<Instant>,
        interrupt: &mut Interrupt,
    ) -> Result<Wait<Result<(), Reason>>> {
        self.client.unsubscribe(filter, user_properties).await?;
        loop {
            match self.next(deadline, interrupt).await? {
                Wait::Ready(Event::UnsubAck(codes)) => {
                    return Ok(Wait::Ready(codes.into_iter().next().unwrap_or(Ok(()))))
                }
                Wait::Ready(ev) => tracing::trace!(?ev, "event while waiting for UNSUBACK"),
                Wait::Timeout => return Ok(Wait::Timeout),
                Wait::Interrupted => return Ok(Wait::Interrupted),
            }
        }
    }

    /// Queues DISCONNECT; events keep coming until `Event::DisconnectSent`, then the channel
    /// ends. For a caller that still counts acknowledgements; others use [`Session::close`].
    pub async fn disconnect(&self) -> Result<()> {
        self.client.disconnect().await
    }

    /// Sends DISCONNECT and waits (bounded) until the broker has closed the connection, so it
    /// has processed the DISCONNECT and does not publish the will.
    pub async fn close(self) -> Result<()> {
        self.client.disconnect().await?;
        self.finish().await;
        Ok(())
    }

    /// Waits (bounded) for the driver to end after a DISCONNECT already queued.
    pub async fn finish(self) {
        let _ = tokio::time::timeout(DRAIN * 2, self.driver).await;
    }
}

/// The driver: polls the event loop until our DISCONNECT has gone out and the broker closed,
/// or until an error it cannot recover from, which is the last thing it sends.
async fn drive(mut events: Events, tx: mpsc::UnboundedSender<Result<Event>>) {
    loop {
        let ev = events.next().await;
        // Nobody waits for the rest (pings, our own acknowledgements going out): handing them
        // over would cost the command a wake-up each, one per message under manual acks.
        if matches!(ev, Ok(Event::Other)) {
            continue;
        }
        let disconnected = matches!(ev, Ok(Event::DisconnectSent));
        let failed = ev.is_err();
        if tx.send(ev).is_err() || failed {
            return;
        }
        if disconnected {
            events.drain_after_disconnect(DRAIN).await;
            return;
        }
    }
}

/// Sleeps until `deadline`, or for ever without one.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
