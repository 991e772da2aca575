//! The protocol's neutral types: what is sent and received, whichever MQTT version carries it.
//! `v4.rs` and `v5.rs` translate rumqttc's two type trees to and from these.

use std::fmt;

use bytes::{BufMut, Bytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

impl Protocol {
    /// mosquitto's spellings (`311`, `mqttv311`, `5`, `mqttv5`) and the version numbers.
    pub fn parse(s: &str) -> Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            "311" | "mqttv311" | "3.1.1" | "4" => Ok(Protocol::V311),
            "5" | "mqttv5" | "5.0" => Ok(Protocol::V5),
            _ => Err(format!(
                "'{s}' is not a supported protocol version: use 311 (mqttv311) or 5 (mqttv5)"
            )),
        }
    }

    /// As people write the version: "3.1.1", "5.0".
    pub fn version(self) -> &'static str {
        match self {
            Protocol::V311 => "3.1.1",
            Protocol::V5 => "5.0",
        }
    }
}

/// A protocol version as `-V` and a profile's `protocol` give it. MQTT 3.1 is carried as 3.1.1,
/// which rumqttc speaks, with its CONNECT rewritten on the way (see `Settings::mqtt31`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub protocol: Protocol,
    pub mqtt31: bool,
}

impl Version {
    /// mosquitto's spellings: `31`/`mqttv31` besides `311`/`mqttv311` and `5`/`mqttv5`.
    pub fn parse(s: &str) -> Result<Version, String> {
        match s.to_ascii_lowercase().as_str() {
            "31" | "mqttv31" | "3.1" | "3" => Ok(Version {
                protocol: Protocol::V311,
                mqtt31: true,
            }),
            _ => match Protocol::parse(s) {
                Ok(protocol) => Ok(Version {
                    protocol,
                    mqtt31: false,
                }),
                Err(_) => Err(format!(
                    "'{s}' is not a supported protocol version: use 31 (mqttv31), 311 (mqttv311) or 5 (mqttv5)"
                )),
            },
        }
    }
}

/// Quality of service. Ordered: a broker may grant less than was asked, never more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Qos {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl Qos {
    pub fn parse(s: &str) -> Result<Qos, String> {
        match s {
            "0" => Ok(Qos::AtMostOnce),
            "1" => Ok(Qos::AtLeastOnce),
            "2" => Ok(Qos::ExactlyOnce),
            _ => Err(format!("QoS '{s}' is not valid: use 0, 1 or 2")),
        }
    }

    /// The QoS on the wire. A value above 2 is a protocol error that the parsers below us
    /// already refuse; it is read as 2 rather than trusted further.
    pub fn from_number(n: u8) -> Qos {
        match n {
            0 => Qos::AtMostOnce,
            1 => Qos::AtLeastOnce,
            _ => Qos::ExactlyOnce,
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// A reason code a broker sent with a refusal, its name in words, and what an MQTT 5 broker
/// added to the packet: a reason string and user properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: u8,
    pub words: String,
    pub string: Option<String>,
    pub user_properties: Vec<(String, String)>,
}

impl Reason {
    /// UNSUBACK 0x11: the filter was not subscribed. A warning, not a refusal.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;

    pub fn new(code: u8, words: impl Into<String>) -> Reason {
        Reason {
            code,
            words: words.into(),
            string: None,
            user_properties: Vec::new(),
        }
    }

    /// With the packet's reason string and user properties.
    pub fn with(mut self, string: Option<String>, user_properties: Vec<(String, String)>) -> Self {
        self.string = string;
        self.user_properties = user_properties;
        self
    }
}

/// `not authorized (0x87)`, then what the broker added: `: "quota used up" [tenant=a]`.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.words, self.code)?;
        if let Some(s) = &self.string {
            write!(f, ": {s:?}")?;
        }
        if !self.user_properties.is_empty() {
            let pairs: Vec<String> = self
                .user_properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " [{}]", pairs.join(", "))?;
        }
        Ok(())
    }
}

/// MQTT 5 properties of a PUBLISH, received or to send (empty for MQTT 3.1.1). A will
/// message carries the same ones, and a delay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
    /// Received only: the broker's ids of the subscriptions that matched.
    pub subscription_identifiers: Vec<usize>,
    /// Sent only: rumqttc resolves the aliases it receives.
    pub topic_alias: Option<u16>,
}

/// CONNECT's MQTT 5 properties, but for the session expiry (`Settings::session_expiry`).
/// `Debug` leaves the authentication data out: it is often a credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    pub receive_maximum: Option<u16>,
    /// None: the largest a packet can be; see `v5::new`.
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<u8>,
    pub request_problem_information: Option<u8>,
    pub user_properties: Vec<(String, String)>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

impl fmt::Debug for ConnectProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectProperties")
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field(
                "request_response_information",
                &self.request_response_information,
            )
            .field(
                "request_problem_information",
                &self.request_problem_information,
            )
            .field("user_properties", &self.user_properties)
            .field("authentication_method", &self.authentication_method)
            .field(
                "authentication_data",
                &self.authentication_data.as_ref().map(|_| "(redacted)"),
            )
            .finish()
    }
}

/// What to do with retained messages when subscribing (MQTT 5 subscription option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// 0: send them at every SUBSCRIBE.
    #[default]
    Always,
    /// 1: only when the subscription is new.
    New,
    /// 2: never.
    Never,
}

/// One filter of a SUBSCRIBE with its options (all but the QoS are MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub filter: String,
    pub qos: Qos,
    /// Do not send back what this client publishes.
    pub no_local: bool,
    /// Keep the retain flag as published instead of clearing it on live messages.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl Subscription {
    /// A filter with MQTT's default options.
    pub fn new(filter: impl Into<String>, qos: Qos) -> Subscription {
        Subscription {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::Always,
        }
    }
}

/// SUBSCRIBE's MQTT 5 properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    pub identifier: Option<u32>,
    pub user_properties: Vec<(String, String)>,
}

/// A received PUBLISH, whichever protocol version carried it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: Qos,
    pub retain: bool,
    pub properties: Option<Properties>,
    /// What acknowledging it takes, for QoS 1/2 under manual acknowledgements
    /// (`Session::ack`).
    pub ack: Option<Ack>,
}

/// A received QoS 1/2 message's packet id on the connection it came over: valid only until
/// that connection is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub(super) pkid: u16,
    pub(super) qos: Qos,
}

impl Ack {
    pub(super) fn of(pkid: u16, qos: Qos) -> Option<Ack> {
        (qos != Qos::AtMostOnce).then_some(Ack { pkid, qos })
    }
}

/// The limits an MQTT 5 broker announces in its CONNACK properties. `None` is "not said",
/// which MQTT 5 defines as the most permissive value (no limit, or available).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerLimits {
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub wildcard_subscriptions: Option<bool>,
    pub shared_subscriptions: Option<bool>,
    pub subscription_identifiers: Option<bool>,
    pub topic_alias_maximum: Option<u16>,
    pub server_keep_alive: Option<u16>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_id: Option<String>,
}

#[derive(Debug)]
pub enum Event {
    Message(Message),
    /// A PUBLISH was flushed to the socket; packet id 0 for QoS 0.
    Written {
        pkid: u16,
    },
    /// A QoS 1 PUBACK or QoS 2 PUBCOMP arrived with success.
    Acked {
        pkid: u16,
    },
    /// A v5 PUBACK/PUBREC/PUBCOMP carried a failure reason.
    PublishRefused {
        pkid: u16,
        reason: Reason,
    },
    /// One entry per filter, in order: the granted QoS, or the reason it was refused.
    SubAck(Vec<Result<Qos, Reason>>),
    /// One entry per filter for v5; v3.1.1 UNSUBACK carries no codes, so it is one `Ok`.
    UnsubAck(Vec<Result<(), Reason>>),
    ConnAck {
        session_present: bool,
        /// What an MQTT 5 broker's CONNACK says it allows; None under 3.1.1.
        limits: Option<BrokerLimits>,
    },
    /// The connection was lost and will be retried. Requests not yet acknowledged may be gone:
    /// rumqttc drops them when the broker has no session to resume.
    ConnectionLost,
    /// Connected again after `ConnectionLost`.
    Reconnected {
        session_present: bool,
    },
    /// Our DISCONNECT was flushed.
    DisconnectSent,
    Other,
}

/// MQTT's variable-length encoding of a remaining length (at most 268 435 455), appended to
/// `buf`: for the packets mqttcli writes itself (`Held::publish_packet`, the MQTT 3.1 relay).
pub fn put_remaining_length(buf: &mut impl BufMut, mut n: usize) {
    loop {
        let digit = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            buf.put_u8(digit);
            return;
        }
        buf.put_u8(digit | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_encode_as_the_spec_shows() {
        let encoded = |n| {
            let mut v = Vec::new();
            put_remaining_length(&mut v, n);
            v
        };
        assert_eq!(encoded(0), [0x00]);
        assert_eq!(encoded(127), [0x7f]);
        assert_eq!(encoded(128), [0x80, 0x01]);
        assert_eq!(encoded(16_383), [0xff, 0x7f]);
        assert_eq!(encoded(268_435_455), [0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn protocol_spellings() {
        for (s, p) in [
            ("311", Protocol::V311),
            ("mqttv311", Protocol::V311),
            ("MQTTv311", Protocol::V311),
            ("5", Protocol::V5),
            ("mqttv5", Protocol::V5),
        ] {
            assert_eq!(Protocol::parse(s), Ok(p));
        }
        assert!(Protocol::parse("6").unwrap_err().contains("use 311"));
    }

    #[test]
    fn qos_reads_and_orders() {
        assert_eq!(Qos::parse("2"), Ok(Qos::ExactlyOnce));
        assert!(Qos::parse("3").is_err());
        assert!(Qos::AtMostOnce < Qos::AtLeastOnce);
        assert_eq!(Qos::from_number(1).number(), 1);
    }

    #[test]
    fn reasons_show_words_and_code() {
        assert_eq!(
            Reason::new(0x87, "not authorized").to_string(),
            "not authorized (0x87)"
        );
        let told = Reason::new(0x97, "quota exceeded").with(
            Some("10 a minute".into()),
            vec![("tenant".into(), "a".into()), ("tenant".into(), "b".into())],
        );
        assert_eq!(
            told.to_string(),
            "quota exceeded (0x97): \"10 a minute\" [tenant=a, tenant=b]"
        );
    }
}
