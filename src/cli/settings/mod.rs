//! ConnArgs → Settings, the one conversion point: every default that depends on other options
//! or on the command's purpose is settled here, and every bad combination becomes a usage error
//! before a socket is opened. Commands receive complete settings and never change them.
//!
//! Where a value comes from, first found wins (the README's "Profiles and environment"):
//! 1. a flag, or a part of `-L`'s URL (explicit flags beat the URL's parts);
//! 2. the environment: `MQTT_HOST`, `MQTT_PORT`, `MQTT_USERNAME`, `MQTT_PASSWORD`;
//! 3. the profile named by `--profile` or `MQTTCLI_PROFILE` (its own fields beat its `url`);
//! 4. the default.
//!
//! A profile's `url` is ignored when `-L` is given: one URL decides the scheme.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};

use super::environment::Environment;
use super::properties::{self, Packet, PacketProperties};
use super::{ConnArgs, TlsArgs};
use crate::connection::proxy;
use crate::connection::settings::{
    Reconnect, Settings, TlsSettings, TlsVersion, WebSocket, Will, DEFAULT_PORT, DEFAULT_TLS_PORT,
    DEFAULT_WSS_PORT, DEFAULT_WS_PORT, QOS2_INFLIGHT_V311,
};
use crate::connection::url::{self, BrokerUrl, Scheme};
use crate::connection::{Protocol, Qos};
use crate::exit::usage;
use crate::profile::{self, Profile};
use crate::secret::Secret;

/// What the command will do with the connection: it settles the defaults that differ between
/// commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `pub`: a single publish fails fast; a stream (-l, --interval) rides out a lost
    /// connection.
    /// `max_inflight`: -M, the in-flight window for QoS 1/2.
    /// `topic_aliases`: more than one message, and no --no-topic-alias (MQTT 5 only).
    Publish {
        qos: Qos,
        streaming: bool,
        max_inflight: Option<u16>,
        topic_aliases: bool,
    },
    /// `sub`: rides out a lost connection; takes `count` messages at most off the session.
    Subscribe { count: Option<u64> },
    /// `unsub`: resumes the session, never clears it and never consumes what it has queued.
    Unsubscribe,
    /// `check`: publishes at `qos`, and reports a lost connection rather than riding it out.
    Check { qos: Qos },
    /// `rr`: MQTT 5 unless -V or the profile says otherwise; one request, one answer.
    Request,
    /// `bench`: publishes or subscribes at `qos`; a lost connection is counted, not ridden
    /// out, and messages are acknowledged on arrival.
    Bench { qos: Qos },
}

/// Settings, the topic from `-L`'s path (used when `-t` is absent), and the `-D` properties
/// of the packets the command sends itself (PUBLISH, SUBSCRIBE, UNSUBSCRIBE).
pub struct Resolved {
    pub settings: Settings,
    pub url_topic: Option<String>,
    pub packets: PacketProperties,
}

pub fn resolve(args: &ConnArgs, env: &Environment, purpose: Purpose) -> Result<Resolved> {
    let default_protocol = match purpose {
        Purpose::Request => Protocol::V5,
        _ => Protocol::V311,
    };
    let loaded = selected_profile(args, env)?;
    let p = loaded.as_ref().map(|l| &l.profile);
    let in_profile = |what: &str| {
        let l = loaded.as_ref().expect("only asked with a profile");
        format!("profile '{}' in {}: {what}", l.name, l.file.display())
    };
    let flag_url = match &args.url {
        Some(u) => Some(url::parse(u).map_err(usage)?),
        None => None,
    };
    // One URL decides the scheme: -L replaces the profile's url altogether.
    let profile_url = match p.and_then(|p| p.url.as_deref()) {
        Some(u) if flag_url.is_none() => Some(url::parse(u).map_err(|e| usage(in_profile(&e)))?),
        _ => None,
    };
    let scheme = flag_url.as_ref().or(profile_url.as_ref()).map(|u| u.scheme);
    let fu = UrlParts::from(flag_url);
    let pu = UrlParts::from(profile_url);
    let env_port = match &env.port {
        Some(v) => match v.trim().parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(usage(format!(
                    "MQTT_PORT='{v}' is not a port number: set it to e.g. 1883, or unset it"
                )))
            }
        },
        None => None,
    };
    let tls_args = with_profile_tls(&args.tls, p);
    // The socket: --unix, else the profile's `unix` unless a flag, -L or the environment says
    // where the broker is (they rank above the profile, and a profile with `unix` has no host).
    let named_elsewhere = args.host.is_some()
        || args.port.is_some()
        || args.url.is_some()
        || env.host.is_some()
        || env.port.is_some();
    let unix = match (&args.unix, p.and_then(|p| p.unix.as_ref())) {
        (Some(path), _) => {
            let given = format!("--unix {}", path.display());
            unix_conflicts(args, p, &tls_args, scheme, &given)?;
            Some(path.clone())
        }
        (None, Some(path)) if !named_elsewhere => {
            let given = in_profile(&format!("unix = {}", path.display()));
            unix_conflicts(args, p, &tls_args, scheme, &given)?;
            Some(path.clone())
        }
        _ => None,
    };

    let host = args
        .host
        .clone()
        .or(fu.host)
        .or_else(|| env.host.clone())
        .or_else(|| p.and_then(|p| p.host.clone()))
        .or(pu.host)
        .unwrap_or_else(|| "localhost".to_string());
    // With --unix the host is only a name: a loopback one, which no environment proxy takes
    // and which resolves wherever MQTT_HOST or a profile points.
    let host = if unix.is_some() {
        "localhost".to_string()
    } else {
        host
    };
    let explicit_port = args
        .port
        .or(fu.port)
        .or(env_port)
        .or(p.and_then(|p| p.port))
        .or(pu.port);
    // As mosquitto's tools: any TLS option, an mqtts/wss URL, or the TLS port itself means TLS
    // (unless a URL says mqtt:// or ws:// outright).
    // (Not with --unix, which refuses TLS options above: MQTT_PORT=8883 alone must not ask
    // for TLS on a local socket.)
    let use_tls = unix.is_none()
        && (tls_args.any()
            || scheme.is_some_and(Scheme::tls)
            || (explicit_port == Some(DEFAULT_TLS_PORT) && scheme.is_none()));
    let use_ws = args.web.ws
        || p.and_then(|p| p.ws).unwrap_or(false)
        || scheme.is_some_and(Scheme::websocket);
    let port = explicit_port.unwrap_or(match (use_tls, use_ws) {
        (false, false) => DEFAULT_PORT,
        (true, false) => DEFAULT_TLS_PORT,
        (false, true) => DEFAULT_WS_PORT,
        (true, true) => DEFAULT_WSS_PORT,
    });
    if port == 0 {
        return Err(usage(
            "port 0 is not valid: give the broker's port with -p, e.g. -p 1883",
        ));
    }
    let tls = if use_tls {
        Some(tls_settings(&tls_args)?)
    } else {
        None
    };
    let websocket = if use_ws {
        let path = args
            .web
            .ws_path
            .clone()
            .or(fu.ws_path)
            .or_else(|| p.and_then(|p| p.ws_path.clone()))
            .or(pu.ws_path)
            .unwrap_or_else(|| "/mqtt".to_string());
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        Some(WebSocket {
            path,
            headers: args.web.header.clone(),
        })
    } else {
        if args.web.ws_path.is_some() || !args.web.header.is_empty() {
            return Err(usage(
                "--ws-path and --header apply to WebSocket connections: add --ws (or use a ws:// or wss:// URL)",
            ));
        }
        None
    };
    let proxy_flag = args
        .web
        .proxy
        .as_deref()
        .or(p.and_then(|p| p.proxy.as_deref()));
    let proxy = proxy::resolve(proxy_flag, &env.proxy, &host).map_err(usage)?;

    let username = args
        .username
        .clone()
        .or(fu.username)
        .or_else(|| env.username.clone())
        .or_else(|| p.and_then(|p| p.username.clone()))
        .or(pu.username);
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => Some(read_password_file(path)?),
        (None, None) => match fu
            .password
            .or_else(|| env.password.clone().map(Secret::new))
        {
            Some(pass) => Some(pass),
            None => match p {
                Some(p) => profile_password(p, env, &in_profile)?.or(pu.password),
                None => None,
            },
        },
    };
    if password.is_some() && username.is_none() {
        return Err(usage(
            "a password was given without a username: add -u USER (MQTT does not allow a password alone)",
        ));
    }

    if args.no_clean && args.id.is_none() {
        return Err(usage(
            "-c/--no-clean keeps a session that only the same client id can resume: add -i ID",
        ));
    }
    let version = args.protocol.or(p.and_then(|p| p.protocol));
    let mqtt31 = version.is_some_and(|v| v.mqtt31);
    if mqtt31 && (use_tls || use_ws) {
        let what = "(MQTT 3.1) works over plain TCP, --unix and proxies, not over TLS or WebSocket";
        return Err(usage(match args.protocol {
            Some(_) => format!("-V 31 {what}: use -V 311 there"),
            None => in_profile(&format!("protocol = 31 {what}: use 311 there")),
        }));
    }
    let client_id =
        match &args.id {
            Some(id) if id.is_empty() => return Err(usage(
                "the client id given with -i is empty: give one, or leave -i out for a random id",
            )),
            Some(id) if id.len() > 65535 => {
                return Err(usage("the client id is longer than 65535 bytes"))
            }
            Some(id) => id.clone(),
            None => {
                let prefix = args
                    .id_prefix
                    .as_deref()
                    .or(p.and_then(|p| p.id_prefix.as_deref()))
                    .unwrap_or("mqttcli-");
                // 3.1 allows 23 characters: a shorter random part keeps the default id within
                // them (15 characters still make a collision very unlikely).
                let random = if mqtt31 {
                    MQTT31_MAX_ID.saturating_sub(prefix.len()).clamp(8, 16)
                } else {
                    16
                };
                random_client_id(prefix, random)
            }
        };
    if mqtt31 && client_id.len() > MQTT31_MAX_ID {
        // Most brokers take longer ids under 3.1 too; the spec does not, so say it once.
        tracing::warn!(
            "the client id '{client_id}' is longer than MQTT 3.1's 23 characters: a strict broker refuses it (CONNACK code 2); choose a shorter one with -i or -I"
        );
    }

    let protocol = version.map_or(default_protocol, |v| v.protocol);
    let keepalive = Duration::from_secs(args.keepalive.into());
    if protocol == Protocol::V5 && args.keepalive < 5 {
        return Err(usage(format!(
            "keepalive {} is too short for MQTT 5 here: use -k 5 or more",
            args.keepalive
        )));
    }

    let unsubscribing = purpose == Purpose::Unsubscribe;
    let packets = properties::parse(&args.property)?;
    if let (Protocol::V311, Some(first)) = (protocol, args.property.first()) {
        return Err(usage(format!(
            "-D {} sets an MQTT 5 property: add -V 5",
            first.join(" ")
        )));
    }
    let asked_expiry = match (args.session_expiry, packets.session_expiry) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "-x and -D CONNECT session-expiry-interval say the same thing: give one",
            ))
        }
        (x, d) => x.or(d),
    };
    let session_expiry = match (protocol, asked_expiry) {
        (Protocol::V311, Some(_)) => {
            return Err(usage("-x/--session-expiry is an MQTT 5 feature: add -V 5"))
        }
        // As mosquitto's tools: a persistent v5 session without -x never expires; without it,
        // the broker would drop the session at disconnect and -c would do nothing. unsub
        // resumes a persistent session: expiry 0 would make the broker drop it at our
        // DISCONNECT.
        (Protocol::V5, None) if args.no_clean || unsubscribing => Some(u32::MAX),
        (_, expiry) => expiry,
    };

    let will = args.will_topic.as_ref().map(|topic| Will {
        topic: topic.clone(),
        payload: Bytes::from(args.will_payload.clone().unwrap_or_default()),
        qos: args.will_qos,
        retain: args.will_retain,
        properties: packets.will.clone(),
        delay_interval: packets.will_delay,
    });
    if will.is_none() && packets.named.contains(&Packet::Will) {
        return Err(usage(
            "-D WILL describes the last-will message: add --will-topic TOPIC",
        ));
    }

    if args.connect_timeout.is_zero() {
        return Err(usage(
            "--connect-timeout must be longer than zero, e.g. 10s",
        ));
    }
    if unsubscribing && args.id.is_none() {
        return Err(usage(
            "unsub changes a persistent session, which the broker finds by client id: add -i ID (the id the subscriber used with -c)",
        ));
    }

    // Only streams ride out a lost connection: a single publish fails fast, and a check, a
    // request or an unsub reports what happened rather than retrying.
    let rides_out_loss = match purpose {
        Purpose::Publish { streaming, .. } => streaming,
        Purpose::Subscribe { .. } => true,
        Purpose::Unsubscribe | Purpose::Check { .. } | Purpose::Request | Purpose::Bench { .. } => {
            false
        }
    };
    let publish_qos = match purpose {
        Purpose::Publish { qos, .. } | Purpose::Check { qos } | Purpose::Bench { qos } => Some(qos),
        _ => None,
    };
    // MQTT 3.1.1 has no Receive Maximum, and a 3.1.1 PUBREC no reason code: Mosquitto takes
    // at most 20 incoming QoS 2 messages in flight (max_inflight_messages) and answers the
    // 21st with a PUBREC that means "quota exceeded", dropping it. rumqttc's default window
    // of 100 would lose messages while reporting them acknowledged; 20 is libmosquitto's own
    // default.
    let qos2_v311 = (protocol == Protocol::V311 && publish_qos == Some(Qos::ExactlyOnce))
        .then_some(QOS2_INFLIGHT_V311);
    let inflight = match purpose {
        Purpose::Publish {
            max_inflight: Some(n),
            ..
        } => Some(n),
        _ => qos2_v311,
    };

    let mut connect_properties = packets.connect.clone();
    if let (Protocol::V5, Purpose::Subscribe { count: Some(n) }) = (protocol, purpose) {
        // As mosquitto_sub: the broker sends no more unacknowledged messages than -C takes,
        // so what comes beyond the count stays queued for the next run.
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        connect_properties.receive_maximum.get_or_insert(n);
    }
    let settings = Settings {
        host,
        port,
        client_id,
        username,
        password,
        protocol,
        keepalive,
        clean_session: !args.no_clean && !unsubscribing,
        session_expiry,
        connect_properties,
        will,
        connect_timeout: args.connect_timeout,
        reconnect: Reconnect {
            enabled: !args.reconnect.no_reconnect && rides_out_loss,
            initial: args.reconnect.reconnect_delay,
            max: args
                .reconnect
                .reconnect_max_delay
                .max(args.reconnect.reconnect_delay),
            attempts: args.reconnect.reconnect_attempts,
        },
        tls,
        websocket,
        proxy,
        unix,
        mqtt31,
        // sub and rr acknowledge a message only once it is written to stdout (at least once
        // to the output). Messages queued for the session may arrive as soon as unsub
        // connects: never acknowledging them leaves them queued for the real subscriber.
        manual_acks: matches!(
            purpose,
            Purpose::Subscribe { .. } | Purpose::Request | Purpose::Unsubscribe
        ),
        inflight,
        // bench measures how long a message waits, in the socket too: no pauses between reads.
        paced_reads: !matches!(purpose, Purpose::Bench { .. }),
        topic_aliases: protocol == Protocol::V5
            && matches!(
                purpose,
                Purpose::Publish {
                    topic_aliases: true,
                    ..
                }
            ),
        // bench gives each client its own (--ifaddr).
        source: None,
    };
    Ok(Resolved {
        settings,
        url_topic: fu.topic.or(pu.topic),
        packets,
    })
}

/// MQTT 3.1's longest client id [MQTT 3.1, 3.1 CONNECT payload].
const MQTT31_MAX_ID: usize = 23;

/// `--unix` names where the broker is, and that it is local: whatever else says where it is, or
/// asks for what a local socket does not carry (TLS, WebSocket, a proxy), is a usage error.
/// `given`: where the socket came from, as the message names it.
fn unix_conflicts(
    args: &ConnArgs,
    p: Option<&Profile>,
    tls: &TlsArgs,
    scheme: Option<Scheme>,
    given: &str,
) -> Result<()> {
    let other = if args.host.is_some() {
        Some("-h/--host")
    } else if args.port.is_some() {
        Some("-p/--port")
    } else if args.url.is_some() {
        Some("-L/--url")
    } else if tls.any() || scheme.is_some_and(Scheme::tls) {
        Some("TLS (--tls, --cafile and the other TLS options, or an mqtts:// URL)")
    } else if args.web.ws
        || p.and_then(|p| p.ws).unwrap_or(false)
        || scheme.is_some_and(Scheme::websocket)
    {
        Some("WebSocket (--ws, or a ws:// URL)")
    } else if args.web.proxy.is_some() || p.is_some_and(|p| p.proxy.is_some()) {
        Some("--proxy")
    } else {
        None
    };
    match other {
        Some(other) => Err(usage(format!(
            "{given} connects to a local socket: it cannot go with {other}; drop one of them"
        ))),
        None => Ok(()),
    }
}

/// The parts of a URL, each to be ranked on its own against flags, environment and profile.
#[derive(Default)]
struct UrlParts {
    host: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password: Option<Secret>,
    topic: Option<String>,
    ws_path: Option<String>,
}

impl From<Option<BrokerUrl>> for UrlParts {
    fn from(url: Option<BrokerUrl>) -> Self {
        match url {
            Some(u) => UrlParts {
                host: Some(u.host),
                port: u.port,
                username: u.username,
                password: u.password,
                topic: u.topic,
                ws_path: u.ws_path,
            },
            None => UrlParts::default(),
        }
    }
}

/// `--profile NAME` (else `MQTTCLI_PROFILE`) from `--config FILE` (else `MQTTCLI_CONFIG`, else
/// the platform's config file). No profile named: no file is read.
fn selected_profile(args: &ConnArgs, env: &Environment) -> Result<Option<profile::Loaded>> {
    let Some(name) = args.profile.as_deref().or(env.profile.as_deref()) else {
        if let Some(file) = &args.config {
            return Err(usage(format!(
                "--config {} names the profiles file: choose a profile with --profile NAME",
                file.display()
            )));
        }
        return Ok(None);
    };
    let file = args
        .config
        .clone()
        .or_else(|| env.config.clone())
        .or_else(|| env.default_config.clone())
        .ok_or_else(|| {
            usage(format!(
                "profile '{name}': no config directory on this system: give the file with --config FILE"
            ))
        })?;
    let loaded = profile::load(&file, name)?;
    tracing::debug!("using profile '{name}' from {}", file.display());
    Ok(Some(loaded))
}

/// Flags first, the profile's TLS fields where a flag is absent.
fn with_profile_tls(flags: &TlsArgs, p: Option<&Profile>) -> TlsArgs {
    let mut t = flags.clone();
    if let Some(p) = p {
        t.tls |= p.tls.unwrap_or(false);
        t.cafile = t.cafile.or_else(|| p.cafile.clone());
        // A client identity is a pair: take both from the flags or both from the profile.
        if t.cert.is_none() && t.key.is_none() {
            t.cert = p.cert.clone();
            t.key = p.key.clone();
        }
        t.tls_server_name = t.tls_server_name.or_else(|| p.tls_server_name.clone());
    }
    t
}

fn profile_password(
    p: &Profile,
    env: &Environment,
    in_profile: &dyn Fn(&str) -> String,
) -> Result<Option<Secret>> {
    if let Some(pass) = &p.password {
        return Ok(Some(pass.clone()));
    }
    if let Some(path) = &p.password_file {
        return read_password_file(path).map(Some);
    }
    if let Some(var) = &p.password_env {
        return match env.vars.get(var) {
            Some(v) => Ok(Some(Secret::new(v.clone()))),
            None => Err(usage(in_profile(&format!(
                "password_env names {var}, which is not set: export {var}, or remove password_env"
            )))),
        };
    }
    Ok(None)
}

fn tls_settings(t: &TlsArgs) -> Result<TlsSettings> {
    let identity = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => {
            return Err(usage(
                "--cert and --key go together: give both for mutual TLS, or neither",
            ))
        }
    };
    Ok(TlsSettings {
        cafile: t.cafile.clone(),
        identity,
        insecure: t.insecure,
        server_name: t.tls_server_name.clone(),
        alpn: t.alpn.clone(),
        min_version: t.tls_version.as_deref().map(|v| match v {
            "1.3" => TlsVersion::V1_3,
            _ => TlsVersion::V1_2,
        }),
    })
}

fn read_password_file(path: &std::path::Path) -> Result<Secret> {
    let mut text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Secret::new(text))
}

/// 16 alphanumeric characters: about 95 bits, so hundreds of processes started in the same
/// instant never collide (the tutorial's `randint(0, 1000)` does).
fn random_client_id(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), len)
    )
}

#[cfg(test)]
mod tests;
