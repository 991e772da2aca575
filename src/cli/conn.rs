//! The connection flags every connecting subcommand shares: broker, identity, session, will,
//! reconnecting, TLS, WebSocket and proxy, profiles.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_positive, parse_qos};
use crate::connection::{Qos, Version};
use crate::secret::Secret;
use crate::{duration, topic};

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// Broker host (also MQTT_HOST) [default: localhost]
    #[arg(short = 'h', long, value_name = "HOST")]
    pub host: Option<String>,

    /// Broker port (also MQTT_PORT) [default: 1883]
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Connect to the broker's Unix-domain socket at PATH instead of a host and port
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// Broker URL: mqtt://[USER[:PASS]@]HOST[:PORT][/TOPIC]
    ///
    /// Flags given beside it (-h, -p, -u, -P, -t) take precedence over the URL's parts.
    /// USER and PASS may be percent-encoded.
    #[arg(short = 'L', long, value_name = "URL")]
    pub url: Option<String>,

    /// Client id [default: mqttcli- and 16 random characters]
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub id: Option<String>,

    /// Prefix for the random client id (instead of "mqttcli-")
    #[arg(
        short = 'I',
        long = "id-prefix",
        value_name = "PREFIX",
        conflicts_with = "id"
    )]
    pub id_prefix: Option<String>,

    /// Username (also MQTT_USERNAME)
    #[arg(short = 'u', long, value_name = "USER")]
    pub username: Option<String>,

    /// Password (prefer MQTT_PASSWORD or --password-file: argv is visible to other users)
    #[arg(short = 'P', long, value_name = "PASS")]
    pub password: Option<Secret>,

    /// Read the password from FILE (one trailing newline is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,

    /// MQTT protocol version: 31 (mqttv31), 311 (mqttv311) or 5 (mqttv5) [default: 311; rr: 5]
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION", value_parser = parse_protocol_version)]
    pub protocol: Option<Version>,

    /// Keepalive interval in seconds (0 disables pings; MQTT 5 needs at least 5)
    #[arg(short = 'k', long, value_name = "SECS", default_value_t = 60)]
    pub keepalive: u16,

    /// Keep the session when disconnecting (persistent session; needs -i)
    #[arg(short = 'c', long = "no-clean")]
    pub no_clean: bool,

    /// MQTT 5 session expiry interval in seconds [default with -c: never expires]
    #[arg(short = 'x', long = "session-expiry", value_name = "SECS")]
    pub session_expiry: Option<u32>,

    /// Topic of the last-will message, published by the broker if the client vanishes
    #[arg(long, value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub will_topic: Option<String>,

    /// Payload of the last-will message
    #[arg(long, value_name = "PAYLOAD", requires = "will_topic")]
    pub will_payload: Option<String>,

    /// QoS of the last-will message
    #[arg(long, value_name = "QOS", default_value = "0", value_parser = parse_qos, requires = "will_topic")]
    pub will_qos: Qos,

    /// Retain the last-will message
    #[arg(long, requires = "will_topic")]
    pub will_retain: bool,

    /// Give up connecting after this long (DNS, TCP and CONNACK together), and on a write that
    /// makes no progress for as long
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub connect_timeout: Duration,

    #[command(flatten)]
    pub reconnect: ReconnectArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub web: WebArgs,

    /// Debug output on stderr (RUST_LOG=... works too)
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Print no warnings, only errors
    #[arg(long, conflicts_with = "debug")]
    pub quiet: bool,

    /// MQTT 5 property, mosquitto's form: -D COMMAND NAME VALUE, or -D COMMAND user-property
    /// KEY VALUE (repeatable). COMMAND: CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, WILL; the
    /// README's "MQTT 5" lists the names
    #[arg(
        short = 'D',
        long = "property",
        value_names = ["COMMAND", "NAME", "VALUE"],
        num_args = 3..=4,
        action = clap::ArgAction::Append,
        help_heading = "MQTT 5"
    )]
    property_values: Vec<String>,

    /// `-D`'s values, one entry per occurrence: filled in by `Cli::parse_from` (clap's derive
    /// flattens occurrences).
    #[arg(skip)]
    pub property: Vec<Vec<String>>,

    /// Connection profile from the config file (also MQTTCLI_PROFILE); flags and MQTT_*
    /// variables override its values
    #[arg(long, value_name = "NAME", help_heading = "Profiles")]
    pub profile: Option<String>,

    /// Config file with the profiles [default: MQTTCLI_CONFIG, else ~/.config/mqttcli/config.toml]
    #[arg(long, value_name = "FILE", help_heading = "Profiles")]
    pub config: Option<PathBuf>,
}

/// `-V`'s value (`Version::parse`: 31, 311 or 5 in mosquitto's spellings).
fn parse_protocol_version(s: &str) -> Result<Version, String> {
    Version::parse(s)
}

// sub and streaming pub (-l, --interval) reconnect after a lost connection; a single pub fails
// fast. A refused CONNACK is never retried.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Reconnecting (sub, pub -l, pub --interval)")]
pub struct ReconnectArgs {
    /// Do not reconnect: a lost connection ends the run with exit code 3
    #[arg(long)]
    pub no_reconnect: bool,

    /// First delay before reconnecting; it doubles after each failed attempt
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration::parse)]
    pub reconnect_delay: Duration,

    /// Longest delay between attempts
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration::parse)]
    pub reconnect_max_delay: Duration,

    /// Give up after N failed attempts in a row [default: never]
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub reconnect_attempts: Option<u64>,
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Use TLS, trusting the OS certificate store (SSL_CERT_FILE / SSL_CERT_DIR are honoured)
    #[arg(long)]
    pub tls: bool,

    /// Trust the CA certificates in FILE (PEM) instead of the OS store; turns TLS on
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; needs --key
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1) for mutual TLS; needs --cert
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Do not verify the broker's certificate at all (prints a warning; for tests only)
    #[arg(long, conflicts_with = "tls_server_name")]
    pub insecure: bool,

    /// Verify the certificate against NAME instead of the host dialled (e.g. with -h IP)
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Offer an ALPN protocol (repeatable), e.g. x-amzn-mqtt-ca
    #[arg(long, value_name = "PROTO")]
    pub alpn: Vec<String>,

    /// Lowest TLS version to accept: 1.2 or 1.3
    #[arg(long, value_name = "VERSION", value_parser = ["1.2", "1.3"])]
    pub tls_version: Option<String>,
}

impl TlsArgs {
    /// Any TLS option turns TLS on, as in mosquitto's tools.
    pub fn any(&self) -> bool {
        self.tls
            || self.cafile.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure
            || self.tls_server_name.is_some()
            || !self.alpn.is_empty()
            || self.tls_version.is_some()
    }
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "WebSocket and proxy")]
pub struct WebArgs {
    /// Connect over WebSocket (wss with any TLS option); default port 8083, 8084 with TLS
    #[arg(long)]
    pub ws: bool,

    /// WebSocket path [default: /mqtt]
    #[arg(long, value_name = "PATH")]
    pub ws_path: Option<String>,

    /// Extra HTTP header on the WebSocket upgrade request, 'Name: value' (repeatable)
    #[arg(long, value_name = "HEADER", value_parser = parse_header)]
    pub header: Vec<(String, String)>,

    /// Proxy: http://[USER:PASS@]HOST:PORT (HTTP CONNECT), socks5://... or socks5h://... (SOCKS5;
    /// socks5h lets the proxy resolve the broker's name) [default: HTTPS_PROXY or ALL_PROXY,
    /// except for NO_PROXY and loopback hosts]
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

/// `Name: value`. Errors never echo the value: it is often a token.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err(
            "a header needs a colon between its name and value: write it as 'Name: value'".into(),
        );
    };
    let (name, value) = (name.trim(), value.trim());
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "'{name}' is not an HTTP header name (letters, digits and -): write the header as 'Name: value'"
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header '{name}' holds characters HTTP does not allow (such as control characters)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}
