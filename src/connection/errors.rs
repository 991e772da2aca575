//! rumqttc's connection errors, in words: what happened, where, and what to try.
//! rumqttc's own `Display` texts are terse ("I/O: …", "Connection refused, return code: …"),
//! and its v4 and v5 error enums differ, so `v4.rs`/`v5.rs` match their own variants and
//! call the shared wording here.

use std::io;
use std::time::Duration;

use super::tls;
use super::transport::Peer;
use crate::exit::{fail, Exit};

pub fn connect_timeout(peer: &Peer, timeout: Option<Duration>) -> anyhow::Error {
    let within = timeout.map_or(String::new(), |t| format!(" within {}", humanize(t)));
    fail(
        Exit::Unreachable,
        format!(
            "no answer from {}{within}: check the host and port, or raise --connect-timeout",
            peer.endpoint
        ),
    )
}

pub fn refused(peer: &Peer, reason: &str, code: u8) -> anyhow::Error {
    let hint = match code {
        1 | 0x84 => "use -V 311 or -V 5 to match the broker",
        2 | 0x85 => "choose another client id with -i",
        4 | 5 | 0x86 | 0x87 => {
            "check the username and password (-u with -P, --password-file or MQTT_PASSWORD) and the broker's access rules"
        }
        0x8A => "this client is banned by the broker",
        0x8C => "the broker wants another authentication method",
        _ => "see the broker's log for the reason",
    };
    fail(
        Exit::ConnectRefused,
        format!(
            "the broker at {} refused the connection: {reason} (CONNACK code {code}): {hint}",
            peer.endpoint
        ),
    )
}

pub fn not_mqtt(peer: &Peer) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!(
            "{} did not answer with an MQTT CONNACK: is it an MQTT broker, and is -p right?",
            peer.endpoint
        ),
    )
}

pub fn closed_before_connack(peer: &Peer) -> anyhow::Error {
    let hint = if peer.tls {
        "see the broker's log for the reason"
    } else {
        "if it is a TLS port, add --tls or --cafile FILE"
    };
    fail(
        Exit::Unreachable,
        format!(
            "{} closed the connection before CONNACK: {hint}",
            peer.endpoint
        ),
    )
}

pub fn io_before_connack(peer: &Peer, e: &io::Error) -> anyhow::Error {
    let endpoint = &peer.endpoint;
    let msg = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {endpoint}: connection refused: is the broker running, and is -p right?"
        ),
        io::ErrorKind::TimedOut => format!(
            "cannot connect to {endpoint}: timed out: check the host and port, or raise --connect-timeout"
        ),
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => {
            return closed_before_connack(peer)
        }
        _ => format!("cannot connect to {endpoint}: {e}"),
    };
    fail(Exit::Unreachable, msg)
}

pub fn lost(peer: &Peer, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!("lost the connection to {}: {why}", peer.endpoint),
    )
}

pub fn too_large(
    peer: &Peer,
    size: impl std::fmt::Display,
    max: impl std::fmt::Display,
) -> anyhow::Error {
    fail(
        Exit::Rejected,
        format!(
            "a packet of {size} bytes exceeds the limit of {max} bytes for {}: send a smaller message",
            peer.endpoint
        ),
    )
}

/// Failures of the layers below MQTT (TLS, WebSocket, proxy), whichever protocol version
/// carried them. `None`: not one of those.
pub fn transport(peer: &Peer, e: &(dyn std::error::Error + 'static)) -> Option<anyhow::Error> {
    if let Some(r) = tls::find_rustls_error(e) {
        return Some(tls::explain(r, &peer.endpoint, peer.port, peer.client_cert));
    }
    None
}

pub fn tls_io(peer: &Peer) -> anyhow::Error {
    tls::not_tls(&peer.endpoint, peer.port)
}

/// rumqttc's proxy error type is not public: tell its cases apart by what it wraps.
pub fn proxy(peer: &Peer, e: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    // Our own relay (--tls-server-name) could not reach the broker: say so as if dialled.
    if let Some(failure) = peer.relay.as_ref().and_then(|r| r.take_failure()) {
        return io_before_connack(peer, &failure);
    }
    let proxy = peer.proxy.as_deref().unwrap_or("the proxy");
    let msg = match e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => format!(
            "cannot connect to the proxy {proxy}: {io}: check --proxy (or HTTPS_PROXY / ALL_PROXY)"
        ),
        None => {
            // async-http-proxy says "The HTTP code is not equal 200: 403": keep the status.
            let text = e.to_string();
            let status: String = text
                .trim_end_matches('.')
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or_default()
                .to_string();
            if status.len() == 3 {
                format!(
                    "the proxy {proxy} refused to open a tunnel to {} (HTTP {status}): check the proxy's rules and credentials",
                    peer.endpoint
                )
            } else {
                format!(
                    "the proxy {proxy} would not open a tunnel to {}: {}",
                    peer.endpoint,
                    text.trim_end_matches('.')
                )
            }
        }
    };
    fail(Exit::Unreachable, msg)
}

pub fn websocket(peer: &Peer, e: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!(
            "the WebSocket connection to {} failed: {e}: check the port and --ws-path",
            peer.endpoint
        ),
    )
}

pub fn not_mqtt_websocket(peer: &Peer) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!(
            "{} accepted the WebSocket but not its 'mqtt' subprotocol: is it an MQTT WebSocket endpoint (check --ws-path)?",
            peer.endpoint
        ),
    )
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
