//! rumqttc's connection errors, in words: what happened, where, and what to try.
//! rumqttc's own `Display` texts are terse ("I/O: …", "Connection refused, return code: …"),
//! and its v4 and v5 error enums differ, so `v4.rs`/`v5.rs` match their own variants and
//! call the shared wording here. TLS failures (rustls's) are put into words here too.

use std::io;
use std::time::Duration;

use rustls::pki_types::UnixTime;
use rustls::CertificateError;

use super::transport::Peer;
use crate::duration;
use crate::exit::{fail, Exit};

pub fn connect_timeout(peer: &Peer, timeout: Option<Duration>) -> anyhow::Error {
    let within = timeout.map_or(String::new(), |t| {
        format!(" within {}", duration::display(t))
    });
    // rumqttc 0.25.1 waits for more bytes after the 2-byte CONNACK with which a 3.1.1-only
    // broker refuses MQTT 5 (code 1, no properties): that refusal ends as this timeout.
    let v311 = if peer.mqtt5 {
        "; if the broker speaks only MQTT 3.1.1, use -V 311"
    } else {
        ""
    };
    fail(
        Exit::Unreachable,
        format!(
            "no answer from {}{within}: check the host and port, or raise --connect-timeout{v311}",
            peer.endpoint
        ),
    )
}

pub fn refused(peer: &Peer, reason: &str, code: u8) -> anyhow::Error {
    let hint = match code {
        1 | 0x84 if peer.mqtt5 => "the broker may speak only MQTT 3.1.1: use -V 311",
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
    fail(
        Exit::Unreachable,
        format!(
            "{} closed the connection before CONNACK: {}",
            peer.endpoint,
            closed_before_connack_hint(peer)
        ),
    )
}

fn closed_before_connack_hint(peer: &Peer) -> String {
    // A 3.1.1-only broker (Aedes, amqtt) hangs up on an MQTT 5 CONNECT without a word; amqtt
    // and rumqttd do the same to an MQTT 3.1 one.
    let version = if peer.mqtt5 {
        Some("if the broker speaks only MQTT 3.1.1, use -V 311")
    } else if peer.mqtt31 {
        Some("if the broker does not speak MQTT 3.1, use -V 311")
    } else {
        None
    };
    let tls =
        (!peer.tls && !peer.unix).then_some("if it is a TLS port, add --tls or --cafile FILE");
    match (version, tls) {
        (Some(v), Some(t)) => format!("{v}; {t}"),
        (Some(v), None) => format!("{v}; else see its log"),
        (None, Some(t)) => t.to_string(),
        (None, None) => "see the broker's log for the reason".to_string(),
    }
}

pub fn io_before_connack(peer: &Peer, e: &io::Error) -> anyhow::Error {
    let endpoint = &peer.endpoint;
    let msg = match e.kind() {
        io::ErrorKind::ConnectionRefused if peer.unix => format!(
            "cannot connect to {endpoint}: connection refused: is the broker running, and listening on this socket?"
        ),
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

/// A write that made no progress within --connect-timeout: rumqttc's flush timeout, or a
/// large payload's piece (`vendor/rumqttc`, `Network::write_publish`), whose timeout is an
/// io::Error of kind TimedOut with no OS error behind it (a socket's own ETIMEDOUT has one).
pub fn write_timed_out(peer: &Peer) -> anyhow::Error {
    lost(
        peer,
        "writing to the socket timed out (raise --connect-timeout for slow links)",
    )
}

pub fn is_write_stall(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none()
}

pub fn lost(peer: &Peer, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!("lost the connection to {}: {why}", peer.endpoint),
    )
}

/// The broker ended the connection with a DISCONNECT of its own (MQTT 5). What it refused of
/// ours (a packet too large, a QoS or retain it does not support, a rate or quota, access) is
/// exit 5 and never retried; anything else (session taken over, keepalive timeout, shutting
/// down, moved) is a lost connection, exit 3, which sub and streams ride out.
pub fn server_disconnect(peer: &Peer, reason: &super::Reason) -> anyhow::Error {
    let refused = matches!(
        reason.code,
        0x87 | 0x90 | 0x94 | 0x95 | 0x96 | 0x97 | 0x99 | 0x9A | 0x9B | 0x93
    );
    let hint = match reason.code {
        0x8E => ": another client connected with the same client id (-i)",
        0x8D => ": it heard nothing within the keepalive (-k)",
        0x9C | 0x9D => ": connect to the server it names",
        _ => "",
    };
    let exit = if refused {
        Exit::Rejected
    } else {
        Exit::Unreachable
    };
    fail(
        exit,
        format!(
            "the broker at {} ended the connection: {reason}{hint}",
            peer.endpoint
        ),
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
    if let Some(r) = find_rustls_error(e) {
        return Some(explain_tls(r, &peer.endpoint, peer.port, peer.client_cert));
    }
    None
}

pub fn tls_io(peer: &Peer) -> anyhow::Error {
    not_tls(&peer.endpoint, peer.port)
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

// TLS: rustls's failures in words, each with what to do about it.

/// The rustls error somewhere in `err`'s chain. tokio-rustls wraps it in an `io::Error`, whose
/// `source()` skips the wrapped error itself, so look inside each `io::Error` too.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // An io::Error may wrap another io::Error that wraps the rustls error (rumqttc's v5
        // path does): follow what it wraps, not just its source().
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn date(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("{} seconds after 1970", t.as_secs()),
            |ts| ts.to_string(),
        )
}

/// `DnsName("broker.test")` / `IpAddress(127.0.0.1)`, as rustls-webpki lists a certificate's
/// names, to plain `broker.test` / `127.0.0.1`.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|s| s.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

fn handshake_failed(endpoint: &str, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Tls,
        format!("TLS handshake with {endpoint} failed: {why}"),
    )
}

/// The broker answered something that is not TLS (or hung up on our ClientHello).
fn not_tls(endpoint: &str, port: u16) -> anyhow::Error {
    handshake_failed(
        endpoint,
        format!("the broker did not answer with TLS: is {port} a plain MQTT port? Drop the TLS options, or use the broker's TLS port (usually 8883)"),
    )
}

/// Words for a rustls failure; `client_cert` says whether we offered one.
fn explain_tls(err: &rustls::Error, endpoint: &str, port: u16, client_cert: bool) -> anyhow::Error {
    use rustls::AlertDescription as A;
    let why = match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the broker's certificate is not signed by a trusted CA: pass the broker's CA with --cafile FILE".to_string()
            }
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "the broker's certificate expired at {}: renew it on the broker, or check this machine's clock",
                date(*not_after)
            ),
            CertificateError::Expired => {
                "the broker's certificate has expired: renew it on the broker, or check this machine's clock".to_string()
            }
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "the broker's certificate is not valid before {}: check this machine's clock",
                date(*not_before)
            ),
            CertificateError::NotValidYet => {
                "the broker's certificate is not valid yet: check this machine's clock".to_string()
            }
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "the broker's certificate is not valid for '{}' (it covers: {}): connect with one of those names, or verify another with --tls-server-name NAME",
                expected.to_str(),
                presented.iter().map(|p| plain_name(p)).collect::<Vec<_>>().join(", ")
            ),
            CertificateError::NotValidForName => {
                "the broker's certificate is not valid for this host name: verify another with --tls-server-name NAME".to_string()
            }
            other => format!("the broker's certificate was rejected: {other:?}"),
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => {
            "the broker asks for a client certificate: pass --cert FILE and --key FILE".to_string()
        }
        // TLS 1.2 has no "certificate required" alert: a broker that wants one, and one that
        // shares no cipher or version with us, both just fail the handshake.
        rustls::Error::AlertReceived(A::HandshakeFailure) if !client_cert => {
            "the broker ended the handshake: it may want a client certificate (pass --cert FILE and --key FILE), or share no cipher or TLS version with mqttcli (see --tls-version)".to_string()
        }
        rustls::Error::AlertReceived(A::ProtocolVersion) => {
            "the broker does not accept this TLS version: check --tls-version".to_string()
        }
        rustls::Error::AlertReceived(alert) if client_cert && rejects_certificate(*alert) => format!(
            "the broker rejected the client certificate ({}): check --cert and --key, and that the broker trusts their CA",
            alert_words(*alert)
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return not_tls(endpoint, port)
        }
        rustls::Error::NoApplicationProtocol => {
            "the broker accepts none of the ALPN protocols offered with --alpn".to_string()
        }
        other => other.to_string(),
    };
    handshake_failed(endpoint, why)
}

fn rejects_certificate(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::DecryptError
            | A::HandshakeFailure
    )
}

fn alert_words(alert: rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::UnknownCA => "it does not trust the certificate's CA",
        A::BadCertificate => "bad certificate",
        A::CertificateExpired => "the certificate has expired",
        A::CertificateRevoked => "the certificate was revoked",
        A::UnsupportedCertificate => "unsupported certificate",
        A::AccessDenied => "access denied",
        A::DecryptError => "the key does not match the certificate",
        _ => "certificate not accepted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_plainly() {
        assert_eq!(plain_name("DnsName(\"broker.test\")"), "broker.test");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    fn peer(mqtt5: bool, mqtt31: bool, tls: bool) -> Peer {
        Peer::for_tests(mqtt5, mqtt31, tls)
    }

    #[test]
    fn a_hang_up_before_connack_suggests_the_version_we_did_not_speak_as() {
        let hint = |p: Peer| closed_before_connack(&p).to_string();
        assert_eq!(
            hint(peer(false, false, false)),
            "broker:1883 closed the connection before CONNACK: if it is a TLS port, add --tls or --cafile FILE"
        );
        assert_eq!(
            hint(peer(true, false, false)),
            "broker:1883 closed the connection before CONNACK: if the broker speaks only MQTT 3.1.1, \
             use -V 311; if it is a TLS port, add --tls or --cafile FILE"
        );
        assert_eq!(
            hint(peer(false, true, false)),
            "broker:1883 closed the connection before CONNACK: if the broker does not speak MQTT 3.1, \
             use -V 311; if it is a TLS port, add --tls or --cafile FILE"
        );
        assert_eq!(
            hint(peer(true, false, true)),
            "broker:1883 closed the connection before CONNACK: if the broker speaks only MQTT 3.1.1, \
             use -V 311; else see its log"
        );
        assert_eq!(
            hint(peer(false, false, true)),
            "broker:1883 closed the connection before CONNACK: see the broker's log for the reason"
        );
    }

    #[test]
    fn dates_are_rfc3339() {
        let t = UnixTime::since_unix_epoch(Duration::from_secs(981173106));
        assert_eq!(date(t), "2001-02-03T04:05:06Z");
    }
}
