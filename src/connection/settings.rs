//! ConnArgs → Settings: every default that depends on other options is settled here, and every
//! bad combination becomes a usage error before a socket is opened.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};

use super::proxy::{self, ProxySettings};
use super::url::{self, Scheme};
use crate::cli::{ConnArgs, Protocol};
use crate::exit::{fail, Exit};
use crate::secret::Secret;

pub const DEFAULT_PORT: u16 = 1883;
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// EMQX's ports, which the tutorial uses; Mosquitto has no standard WebSocket port.
pub const DEFAULT_WS_PORT: u16 = 8083;
pub const DEFAULT_WSS_PORT: u16 = 8084;

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

#[derive(Debug, Clone)]
pub struct WebSocket {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
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
    pub will: Option<Will>,
    pub connect_timeout: Duration,
    pub reconnect: Reconnect,
    pub tls: Option<TlsSettings>,
    pub websocket: Option<WebSocket>,
    pub proxy: Option<ProxySettings>,
    /// The topic from `-L`'s path, used when `-t` is absent.
    pub url_topic: Option<String>,
    /// Leave received QoS 1/2 messages unacknowledged (unsub must not consume a session's queue).
    pub manual_acks: bool,
}

/// Where the password may come from besides the flags; passed in so tests need no process env.
#[derive(Default)]
pub struct Environment {
    pub password: Option<String>,
    pub proxy: proxy::ProxyEnv,
}

impl Environment {
    pub fn from_process() -> Self {
        Environment {
            password: std::env::var("MQTT_PASSWORD").ok(),
            proxy: proxy::ProxyEnv::from_process(),
        }
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    fail(Exit::Usage, msg)
}

pub fn resolve(args: &ConnArgs, env: &Environment) -> Result<Settings> {
    let url = match &args.url {
        Some(u) => Some(url::parse(u).map_err(usage)?),
        None => None,
    };
    let scheme = url.as_ref().map(|u| u.scheme);
    let (url_host, url_port, url_user, url_pass, url_topic, url_ws_path) = match url {
        Some(u) => (
            Some(u.host),
            u.port,
            u.username,
            u.password,
            u.topic,
            u.ws_path,
        ),
        None => (None, None, None, None, None, None),
    };

    let host = args
        .host
        .clone()
        .or(url_host)
        .unwrap_or_else(|| "localhost".to_string());
    let explicit_port = args.port.or(url_port);
    // As mosquitto's tools: any TLS option, an mqtts/wss URL, or the TLS port itself means TLS
    // (unless a URL says mqtt:// or ws:// outright).
    let use_tls = args.tls.any()
        || scheme.is_some_and(Scheme::tls)
        || (explicit_port == Some(DEFAULT_TLS_PORT) && scheme.is_none());
    let use_ws = args.web.ws || scheme.is_some_and(Scheme::websocket);
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
        Some(tls_settings(args)?)
    } else {
        None
    };
    let websocket = if use_ws {
        let path = args
            .web
            .ws_path
            .clone()
            .or(url_ws_path)
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
    let proxy = proxy::resolve(args.web.proxy.as_deref(), &env.proxy, &host).map_err(usage)?;

    let username = args.username.clone().or(url_user);
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => Some(read_password_file(path)?),
        (None, None) => url_pass.or_else(|| env.password.clone().map(Secret::new)),
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
    let client_id =
        match &args.id {
            Some(id) if id.is_empty() => return Err(usage(
                "the client id given with -i is empty: give one, or leave -i out for a random id",
            )),
            Some(id) if id.len() > 65535 => {
                return Err(usage("the client id is longer than 65535 bytes"))
            }
            Some(id) => id.clone(),
            None => random_client_id(args.id_prefix.as_deref().unwrap_or("mqttcli-")),
        };

    let keepalive = Duration::from_secs(args.keepalive.into());
    if args.protocol == Protocol::V5 && args.keepalive < 5 {
        return Err(usage(format!(
            "keepalive {} is too short for MQTT 5 here: use -k 5 or more",
            args.keepalive
        )));
    }

    let session_expiry = match (args.protocol, args.session_expiry) {
        (Protocol::V311, Some(_)) => {
            return Err(usage("-x/--session-expiry is an MQTT 5 feature: add -V 5"))
        }
        // As mosquitto's tools: a persistent v5 session without -x never expires; without it,
        // the broker would drop the session at disconnect and -c would do nothing.
        (Protocol::V5, None) if args.no_clean => Some(u32::MAX),
        (_, expiry) => expiry,
    };

    let will = args.will_topic.as_ref().map(|topic| Will {
        topic: topic.clone(),
        payload: Bytes::from(args.will_payload.clone().unwrap_or_default()),
        qos: args.will_qos,
        retain: args.will_retain,
    });

    if args.connect_timeout.is_zero() {
        return Err(usage(
            "--connect-timeout must be longer than zero, e.g. 10s",
        ));
    }

    Ok(Settings {
        host,
        port,
        client_id,
        username,
        password,
        protocol: args.protocol,
        keepalive,
        clean_session: !args.no_clean,
        session_expiry,
        will,
        connect_timeout: args.connect_timeout,
        reconnect: Reconnect {
            enabled: !args.reconnect.no_reconnect,
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
        url_topic,
        manual_acks: false,
    })
}

fn tls_settings(args: &ConnArgs) -> Result<TlsSettings> {
    let t = &args.tls;
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
fn random_client_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 16)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn conn(args: &[&str]) -> ConnArgs {
        let argv = ["mqttcli", "sub", "-t", "x"]
            .iter()
            .chain(args.iter())
            .copied();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sub(s) => s.conn,
            _ => unreachable!(),
        }
    }

    fn resolve_with(args: &[&str], password_env: Option<&str>) -> Result<Settings> {
        resolve(
            &conn(args),
            &Environment {
                password: password_env.map(str::to_string),
                ..Default::default()
            },
        )
    }

    fn err(args: &[&str]) -> String {
        let e = resolve_with(args, None).unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), Exit::Usage);
        e.to_string()
    }

    #[test]
    fn defaults() {
        let s = resolve_with(&[], None).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("localhost", 1883));
        assert!(s.client_id.starts_with("mqttcli-") && s.client_id.len() == 24);
        assert!(s.clean_session);
        assert_eq!(s.keepalive, Duration::from_secs(60));
        assert_eq!(s.protocol, Protocol::V311);
    }

    #[test]
    fn random_ids_differ_and_take_a_prefix() {
        let a = resolve_with(&["-I", "probe-"], None).unwrap().client_id;
        let b = resolve_with(&["-I", "probe-"], None).unwrap().client_id;
        assert!(a.starts_with("probe-") && a != b);
    }

    #[test]
    fn flags_beat_the_url_and_the_url_beats_env() {
        let s = resolve_with(
            &["-L", "mqtt://u:urlpass@h:1884/t", "-p", "1999"],
            Some("envpass"),
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("h", 1999));
        assert_eq!(s.password.unwrap().expose(), "urlpass");
        assert_eq!(s.url_topic.as_deref(), Some("t"));
        let s = resolve_with(&["-u", "u"], Some("envpass")).unwrap();
        assert_eq!(s.password.unwrap().expose(), "envpass");
        let s = resolve_with(&["-u", "u", "-P", "flag"], Some("envpass")).unwrap();
        assert_eq!(s.password.unwrap().expose(), "flag");
    }

    #[test]
    fn password_file_drops_one_newline() {
        let dir = std::env::temp_dir().join(format!("mqttcli-pw-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let s = resolve_with(&["-u", "u", "--password-file", dir.to_str().unwrap()], None).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(s.password.unwrap().expose(), "s3cret");
        assert!(err(&["-u", "u", "--password-file", "/nonexistent/pw"])
            .contains("cannot read the password file"));
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        assert!(err(&["-c"]).contains("add -i ID"));
        assert!(err(&["-P", "x"]).contains("add -u USER"));
        assert!(err(&["-V", "5", "-k", "2"]).contains("use -k 5 or more"));
        assert!(err(&["-x", "10"]).contains("add -V 5"));
        assert!(err(&["-p", "0"]).contains("port 0"));
        assert!(err(&["-i", ""]).contains("empty"));
    }

    #[test]
    fn transport_defaults_follow_mosquitto_and_emqx() {
        let port = |args: &[&str]| resolve_with(args, None).unwrap().port;
        assert_eq!(port(&[]), 1883);
        assert_eq!(port(&["--tls"]), 8883);
        assert_eq!(port(&["--cafile", "ca.pem"]), 8883);
        assert_eq!(port(&["-L", "mqtts://h"]), 8883);
        assert_eq!(port(&["--ws"]), 8083);
        assert_eq!(port(&["--ws", "--insecure"]), 8084);
        assert_eq!(port(&["-L", "wss://h/x"]), 8084);
        assert!(resolve_with(&["-p", "8883"], None).unwrap().tls.is_some());
        assert!(resolve_with(&["-L", "mqtt://h:8883"], None)
            .unwrap()
            .tls
            .is_none());
        let s = resolve_with(&["-L", "wss://h:9001/custom"], None).unwrap();
        assert_eq!(s.websocket.unwrap().path, "/custom");
        assert_eq!(
            resolve_with(&["--ws"], None)
                .unwrap()
                .websocket
                .unwrap()
                .path,
            "/mqtt"
        );
    }

    #[test]
    fn tls_and_ws_option_errors() {
        assert!(err(&["--cert", "c.pem"]).contains("--cert and --key go together"));
        assert!(err(&["--key", "k.pem"]).contains("--cert and --key go together"));
        assert!(err(&["--ws-path", "/x"]).contains("add --ws"));
    }

    #[test]
    fn persistent_v5_sessions_do_not_expire_by_default() {
        let s = resolve_with(&["-V", "5", "-c", "-i", "me"], None).unwrap();
        assert_eq!(s.session_expiry, Some(u32::MAX));
        assert!(!s.clean_session);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let s = resolve_with(&["-u", "u", "-P", "hunter2"], None).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
