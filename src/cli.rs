//! The command line: clap types only. Values are checked here (so a bad one is a usage error
//! with exit code 2); settling defaults that depend on other options is `connection::settings`'s job.

// clap conventions in this file:
// - `short = 'x'` always explicit; `long` implicit.
// - Options that take a value have an uppercase value_name.
// - Flags keep mosquitto's spelling so people's habits carry over.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;
use crate::{duration, exit, topic};

const AFTER_HELP: &str = "\
Examples:
  mqttcli sub -h broker.emqx.io -t 'python/mqtt' -v
  mqttcli pub -h broker.emqx.io -t 'python/mqtt' -m 'messages: {counter}' --interval 1s
  mqttcli pub -L mqtt://user@localhost:1883/sensors/1 -q 1 -l < readings.txt
  mqttcli unsub -i my-session -t 'sensors/#'
  mqttcli check -h broker.emqx.io
  mqttcli rr -V 5 -t services/time -m now -W 5s";

/// What this build can do, for `--version` (`-V` is the protocol version).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rustls/ring, websocket, http-proxy)"
);

#[derive(Parser, Debug)]
#[command(
    name = "mqttcli",
    version,
    long_version = LONG_VERSION,
    about = "Publish, subscribe and unsubscribe over MQTT 3.1.1 and 5.0",
    after_help = format!("{AFTER_HELP}\n\n{}", exit::TABLE),
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true,
    propagate_version = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print help (-h is the broker host, as in mosquitto's tools)
    #[arg(long, action = ArgAction::Help, global = true)]
    help: Option<bool>,

    /// Print the version and the build's features
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Publish messages to a topic
    #[command(after_help = format!("Examples:\n  mqttcli pub -t sensors/1 -m 21.5\n  mqttcli pub -t python/mqtt -m 'messages: {{counter}}' --interval 1s --repeat 10\n  tail -f app.log | mqttcli pub -t logs/app -q 1 -l\n\n{}", exit::TABLE))]
    Pub(PubArgs),
    /// Subscribe to topic filters and print the messages
    #[command(after_help = format!("Examples:\n  mqttcli sub -t 'sensors/#' -v\n  mqttcli sub -t python/mqtt -F 'Received `{{payload}}` from `{{topic}}` topic'\n  mqttcli sub -t 'events/#' --json | jq .payload\n  mqttcli sub -t status -C 1 -W 10\n\n{}", exit::TABLE))]
    Sub(SubArgs),
    /// Remove subscriptions from a persistent session (needs the session's -i)
    #[command(after_help = format!("Example:\n  mqttcli unsub -i my-session -t 'sensors/#'\n\n{}", exit::TABLE))]
    Unsub(UnsubArgs),
    /// Check a broker end to end: connect, subscribe, publish, receive, unsubscribe, disconnect
    #[command(after_help = format!("{}\n\n{}", crate::check::EXAMPLES, exit::TABLE))]
    Check(crate::check::CheckArgs),
    /// Request/response (MQTT 5): publish a request, print the matching response
    #[command(after_help = format!("{}\n\n{}", crate::rr::EXAMPLES, exit::TABLE))]
    Rr(crate::rr::RrArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(after_help = crate::completions::COMPLETIONS_EXAMPLES)]
    Completions(crate::completions::CompletionsArgs),
    /// Print the man page (roff), for packagers
    #[command(hide = true)]
    Man(crate::completions::ManArgs),
}

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// Broker host (also MQTT_HOST) [default: localhost]
    #[arg(short = 'h', long, value_name = "HOST")]
    pub host: Option<String>,

    /// Broker port (also MQTT_PORT) [default: 1883]
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,

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

    /// MQTT protocol version: 311 (mqttv311) or 5 (mqttv5) [default: 311; rr: 5]
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION", value_parser = parse_version)]
    pub protocol: Option<Protocol>,

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
    pub will_qos: u8,

    /// Retain the last-will message
    #[arg(long, requires = "will_topic")]
    pub will_retain: bool,

    /// Give up connecting after this long (DNS, TCP and CONNACK together)
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

    /// Connection profile from the config file (also MQTTCLI_PROFILE); flags and MQTT_*
    /// variables override its values
    #[arg(long, value_name = "NAME", help_heading = "Profiles")]
    pub profile: Option<String>,

    /// Config file with the profiles [default: MQTTCLI_CONFIG, else ~/.config/mqttcli/config.toml]
    #[arg(long, value_name = "FILE", help_heading = "Profiles")]
    pub config: Option<PathBuf>,
}

/// sub and streaming pub (-l, --interval) reconnect after a lost connection; a single pub fails
/// fast. A refused CONNACK is never retried.
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

    /// HTTP CONNECT proxy, http://[USER:PASS@]HOST:PORT [default: HTTPS_PROXY or ALL_PROXY,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    V311,
    V5,
}

pub fn parse_version(s: &str) -> Result<Protocol, String> {
    match s.to_ascii_lowercase().as_str() {
        "311" | "mqttv311" | "3.1.1" | "4" => Ok(Protocol::V311),
        "5" | "mqttv5" | "5.0" => Ok(Protocol::V5),
        _ => Err(format!(
            "'{s}' is not a supported protocol version: use 311 (mqttv311) or 5 (mqttv5)"
        )),
    }
}

pub fn parse_qos(s: &str) -> Result<u8, String> {
    match s {
        "0" | "1" | "2" => Ok(s.parse().unwrap_or_default()),
        _ => Err(format!("QoS '{s}' is not valid: use 0, 1 or 2")),
    }
}

fn parse_positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive whole number")),
    }
}

#[derive(Args, Debug)]
pub struct PubArgs {
    /// Topic to publish to (or the path of -L's URL)
    #[arg(short = 't', long, value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub topic: Option<String>,

    #[command(flatten)]
    pub payload: PayloadArgs,

    /// Quality of service: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: u8,

    /// Ask the broker to retain the message
    #[arg(short = 'r', long)]
    pub retain: bool,

    /// Publish again every DURATION (e.g. 1s, 250ms), --repeat times or until interrupted
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub interval: Option<Duration>,

    /// Publish the message N times (with --interval: N ticks)
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub repeat: Option<u64>,

    /// Send -m exactly as given, with no placeholders filled in
    #[arg(long)]
    pub literal: bool,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PayloadArgs {
    /// Message payload; placeholders {counter} (from 0; short form: n in braces), {time}
    /// (RFC 3339), {unix} and {unix_ms} are filled in
    #[arg(short = 'm', long, value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Send the whole FILE as one message (binary-safe)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Send all of stdin as one message
    #[arg(short = 's', long)]
    pub stdin_message: bool,

    /// Send each line of stdin as a message, over one connection
    #[arg(short = 'l', long)]
    pub stdin_lines: bool,

    /// Send an empty message (with -r: clears the retained message)
    #[arg(short = 'n', long)]
    pub null_message: bool,
}

/// How received messages are printed: every one by `sub`, the response by `rr`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print the topic before the payload
    #[arg(short = 'v', long, conflicts_with_all = ["format", "json"])]
    pub verbose: bool,

    /// Print no newline after each message
    #[arg(short = 'N', long = "no-newline", conflicts_with = "json")]
    pub no_newline: bool,

    /// Output template: {topic} {payload} {qos} {retain} {len} {time} {hex} {props}; {{ and }} for braces
    #[arg(
        short = 'F',
        long = "format",
        value_name = "TEMPLATE",
        conflicts_with = "json"
    )]
    pub format: Option<String>,

    /// One JSON object per message: topic, qos, retain, time, payload (utf8 or base64), properties
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SubArgs {
    /// Topic filter to subscribe to (repeatable; + and # wildcards, $share/GROUP/FILTER)
    #[arg(short = 't', long, value_name = "FILTER", value_parser = topic::parse_filter)]
    pub topic: Vec<String>,

    /// QoS: one for all filters, or one per -t in order
    #[arg(short = 'q', long, value_name = "QOS", value_parser = parse_qos)]
    pub qos: Vec<u8>,

    /// Exit after N messages
    #[arg(short = 'C', long = "count", value_name = "N", value_parser = parse_positive)]
    pub count: Option<u64>,

    /// Exit with code 6 if not done after DURATION (seconds, or e.g. 500ms)
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,

    /// Exit once subscribed (after SUBACK), e.g. to set up a persistent session
    #[arg(short = 'E', long = "exit-after-sub")]
    pub exit_after_sub: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Do not print retained messages
    #[arg(short = 'R', long = "no-retained", conflicts_with = "retained_only")]
    pub no_retained: bool,

    /// Print only retained messages, and exit at the first message that is not retained
    #[arg(long)]
    pub retained_only: bool,

    /// Hide messages whose topic matches FILTER (repeatable)
    #[arg(short = 'T', long = "filter-out", value_name = "FILTER", value_parser = topic::parse_filter)]
    pub filter_out: Vec<String>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
pub struct UnsubArgs {
    /// Topic filter to remove from the session (repeatable)
    #[arg(short = 't', long, value_name = "FILTER", required = true, value_parser = topic::parse_filter)]
    pub topic: Vec<String>,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mqttcli").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dash_h_is_the_host_and_help_is_long() {
        let cli = parse(&["sub", "-h", "example.org", "-t", "a"]).unwrap();
        let Command::Sub(sub) = cli.command else {
            panic!()
        };
        assert_eq!(sub.conn.host.as_deref(), Some("example.org"));
        let err = parse(&["sub", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn values_are_checked() {
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-q", "3"]).is_err());
        assert!(parse(&["pub", "-t", "a/#", "-m", "x"]).is_err());
        assert!(parse(&["sub", "-t", "a/#/b"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-f", "y"]).is_err());
        assert!(parse(&["pub", "-t", "a"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "-V", "6"]).is_err());
        assert!(parse(&["pub", "-t", "a", "-m", "x", "--interval", "soon"]).is_err());
        assert!(parse(&["unsub", "-i", "x"]).is_err());
    }

    #[test]
    fn protocol_spellings() {
        for (s, p) in [
            ("311", Protocol::V311),
            ("mqttv311", Protocol::V311),
            ("5", Protocol::V5),
            ("mqttv5", Protocol::V5),
        ] {
            assert_eq!(parse_version(s), Ok(p));
        }
    }

    #[test]
    fn repeated_flags_take_the_last_value() {
        let cli = parse(&["pub", "-t", "a", "-m", "x", "-q", "1", "-q", "2"]).unwrap();
        let Command::Pub(p) = cli.command else {
            panic!()
        };
        assert_eq!(p.qos, 2);
    }
}
