//! One connection interface for every subcommand. rumqttc's MQTT 3.1.1 (v4) and 5.0 (v5) APIs
//! are separate type trees; `v4.rs` and `v5.rs` translate them to the neutral types here, so
//! `pub`, `sub` and `unsub` are written once.
//!
//! Ownership: the `Events` half owns rumqttc's event loop and must be polled by one task; the
//! `Client` half only queues requests and may be cloned into producer tasks.

mod errors;
pub mod proxy;
pub mod settings;
mod tls;
mod transport;
pub mod url;
mod v4;
mod v5;

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;

pub use settings::Settings;
use transport::Peer;

use crate::cli::Protocol;
use crate::exit::{fail, Exit};

/// MQTT's largest packet: a 268 435 455-byte remaining length plus a 5-byte fixed header.
/// rumqttc defaults to 10 KiB each way; a CLI must carry whatever the broker accepts.
pub const MAX_PACKET: usize = 268_435_460;

/// v5 properties of a received message (empty for MQTT 3.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
    pub subscription_identifiers: Vec<usize>,
}

/// A received PUBLISH, whichever protocol version carried it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub properties: Option<Properties>,
}

#[derive(Debug)]
pub enum Event {
    Message(Message),
    /// A QoS 0 PUBLISH was flushed to the socket.
    Written,
    /// A QoS 1 PUBACK or QoS 2 PUBCOMP arrived with success.
    Acked,
    /// A v5 PUBACK/PUBREC/PUBCOMP carried a failure reason, in words with its code.
    PublishRefused(String),
    /// One entry per filter, in order: the granted QoS, or the reason it was refused.
    SubAck(Vec<Result<u8, String>>),
    /// One entry per filter for v5; v3.1.1 UNSUBACK carries no codes, so it is one `Ok`.
    UnsubAck(Vec<Result<(), String>>),
    ConnAck {
        session_present: bool,
    },
    /// Our DISCONNECT was flushed.
    DisconnectSent,
    Other,
}

#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub struct Events {
    inner: EventLoop,
    peer: Peer,
}

enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

pub struct Connected {
    pub client: Client,
    pub events: Events,
    pub session_present: bool,
}

/// Requests queued ahead of the event loop. A full queue makes `Client::publish` wait, which is
/// the back-pressure a stdin producer needs.
const REQUEST_QUEUE: usize = 1024;

/// Connects and waits for CONNACK. Any failure here is final: polling again would make rumqttc
/// reconnect, and a refused CONNACK must not be retried.
pub async fn connect(settings: &Settings) -> Result<Connected> {
    tracing::debug!(?settings, "connecting");
    let wire = transport::wire(settings)?;
    // Through a proxy, the proxy resolves the name; it may not resolve here at all.
    if wire.proxy.is_none() {
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
    let mut events = Events {
        inner,
        peer: wire.peer,
    };
    let timeout = settings.connect_timeout;
    let session_present = tokio::time::timeout(timeout, async {
        loop {
            match events.poll(false).await? {
                Event::ConnAck { session_present } => {
                    return Ok::<_, anyhow::Error>(session_present)
                }
                other => tracing::debug!(?other, "event before CONNACK"),
            }
        }
    })
    .await
    .map_err(|_| errors::connect_timeout(&events.peer, Some(timeout)))??;
    tracing::debug!(
        session_present,
        "CONNACK received: connected to {}",
        events.peer.endpoint
    );
    Ok(Connected {
        client,
        events,
        session_present,
    })
}

/// Resolving first gives DNS failures their own message; rumqttc reports them as an
/// uncategorised I/O error.
async fn resolve(settings: &Settings) -> Result<()> {
    let lookup = async {
        tokio::net::lookup_host((settings.host.as_str(), settings.port))
            .await
            .map(|mut addrs| addrs.next())
    };
    match tokio::time::timeout(settings.connect_timeout, lookup).await {
        Ok(Ok(Some(_))) => Ok(()),
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
    /// The next event. After an error the connection is gone; do not call again.
    pub async fn next(&mut self) -> Result<Event> {
        self.poll(true).await
    }

    async fn poll(&mut self, connected: bool) -> Result<Event> {
        match &mut self.inner {
            EventLoop::V4(el) => match el.poll().await {
                Ok(ev) => Ok(v4::event(ev)),
                Err(e) => Err(v4::error(e, connected, &self.peer)),
            },
            EventLoop::V5(el) => match el.poll().await {
                Ok(ev) => Ok(v5::event(ev)),
                Err(e) => Err(v5::error(e, connected, &self.peer)),
            },
        }
    }

    /// After our DISCONNECT: wait (bounded) for the broker to close the socket, so it has
    /// processed the DISCONNECT before we exit and does not publish the will.
    pub async fn drain_after_disconnect(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while let Ok(ev) = self.next().await {
                tracing::trace!(?ev, "event after DISCONNECT");
            }
        })
        .await;
    }
}

fn queue_closed() -> anyhow::Error {
    fail(
        Exit::Other,
        "the connection's request queue closed unexpectedly",
    )
}

fn to_qos4(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn to_qos5(qos: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a PUBLISH; it is on the wire only once the event loop has been polled far enough
    /// (`Event::Written` for QoS 0, `Event::Acked` for QoS 1/2).
    pub async fn publish(&self, topic: &str, qos: u8, retain: bool, payload: Bytes) -> Result<()> {
        match self {
            Client::V4(c) => c
                .publish_bytes(topic, to_qos4(qos), retain, payload)
                .await
                .map_err(|_| queue_closed()),
            Client::V5(c) => c
                .publish_bytes(topic, to_qos5(qos), retain, payload)
                .await
                .map_err(|_| queue_closed()),
        }
    }

    pub async fn subscribe(&self, filters: &[(String, u8)]) -> Result<()> {
        match self {
            Client::V4(c) => {
                let subs = filters
                    .iter()
                    .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), to_qos4(*q)));
                c.subscribe_many(subs).await.map_err(|_| queue_closed())
            }
            Client::V5(c) => {
                let subs = filters
                    .iter()
                    .map(|(f, q)| rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), to_qos5(*q)));
                c.subscribe_many(subs).await.map_err(|_| queue_closed())
            }
        }
    }

    /// One UNSUBSCRIBE per filter: rumqttc's v3.1.1 client cannot put several in one packet.
    pub async fn unsubscribe(&self, filter: &str) -> Result<()> {
        match self {
            Client::V4(c) => c.unsubscribe(filter).await.map_err(|_| queue_closed()),
            Client::V5(c) => c.unsubscribe(filter).await.map_err(|_| queue_closed()),
        }
    }

    pub async fn disconnect(&self) -> Result<()> {
        match self {
            Client::V4(c) => c.disconnect().await.map_err(|_| queue_closed()),
            Client::V5(c) => c.disconnect().await.map_err(|_| queue_closed()),
        }
    }
}
