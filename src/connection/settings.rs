//! What a connection needs, complete: every value settled before a socket is opened. Built in
//! one place, `cli::resolve`, from flags, environment and profile; nothing changes it after.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::proxy::ProxySettings;
use super::{ConnectProperties, Properties, Protocol, Qos};
use crate::secret::Secret;

pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// EMQX's ports, which the tutorial uses; Mosquitto has no standard WebSocket port.
pub const DEFAULT_WS_PORT: u16 = 8083;
pub const DEFAULT_WSS_PORT: u16 = 8084;

/// In-flight QoS 2 PUBLISHes under 3.1.1, which has no Receive Maximum: Mosquitto takes at
/// most 20 at once (its max_inflight_messages) and drops the 21st. `cli::settings` sizes a
/// -q 2 stream's window by it; `pub --jsonl` counts a recording's QoS 2 messages against it.
pub const QOS2_INFLIGHT_V311: u16 = 20;
/// QoS 1/2 PUBLISHes in flight without -M: rumqttc's MQTT 3.1.1 default, which its MQTT 5 event
/// loop lacks (it leaves the window to the broker's Receive Maximum, up to 65 535, and fills a
/// slot for each up front: 14 MB of every MQTT 5 connection's memory).
pub const DEFAULT_INFLIGHT: u16 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub cafile: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    pub insecure: bool,
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
    pub min_version: Option<TlsVersion>,
}

/// When and how often to reconnect after a lost connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// Off for a single `pub`, and with --no-reconnect.
    pub enabled: bool,
    pub initial: Duration,
    pub max: Duration,
    /// Failed attempts in a row before giving up; None: never give up.
    pub attempts: Option<u64>,
}

#[derive(Clone)]
pub struct WebSocket {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Header values are left out: `--header 'Authorization: Bearer …'` carries a secret, and
/// `-d` prints the settings.
impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: (redacted)"))
            .collect();
        f.debug_struct("WebSocket")
            .field("path", &self.path)
            .field("headers", &names)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: Qos,
    pub retain: bool,
    /// MQTT 5: the will's properties (`-D WILL ...`).
    pub properties: Properties,
    /// MQTT 5: how long the broker waits after losing us before it publishes the will.
    pub delay_interval: Option<u32>,
}

/// What a connection needs, resolved. `Debug` is safe to log: the password is a `Secret`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub protocol: Protocol,
    pub keepalive: Duration,
    pub clean_session: bool,
    pub session_expiry: Option<u32>,
    /// MQTT 5: CONNECT's other properties (`-D CONNECT ...`).
    pub connect_properties: ConnectProperties,
    pub will: Option<Will>,
    pub connect_timeout: Duration,
    pub reconnect: Reconnect,
    pub tls: Option<TlsSettings>,
    pub websocket: Option<WebSocket>,
    pub proxy: Option<ProxySettings>,
    /// `--unix PATH`: the broker's Unix-domain socket, instead of host and port (which are then
    /// only names for messages). Never with TLS, WebSocket or a proxy.
    pub unix: Option<PathBuf>,
    /// `-V 31`: MQTT 3.1. `protocol` is then `V311`, whose packets 3.1 shares for all mqttcli
    /// sends; only CONNECT's protocol name and level differ, rewritten on the way (mqtt31.rs).
    pub mqtt31: bool,
    /// Leave received QoS 1/2 messages unacknowledged (unsub must not consume a session's queue).
    pub manual_acks: bool,
    /// Outgoing QoS 1/2 PUBLISHes in flight at most; None: rumqttc's default (100).
    pub inflight: Option<u16>,
    /// Read a busy QoS 0 stream in bursts (pacing.rs). Off where the time a message waits in
    /// the socket is what is being measured.
    pub paced_reads: bool,
    /// MQTT 5 streams: a topic the broker already knows goes out as its alias (aliases.rs).
    pub topic_aliases: bool,
    /// `bench --ifaddr`: the local address to connect from; None: the system's choice. Never
    /// with `unix`.
    pub source: Option<std::net::IpAddr>,
}
