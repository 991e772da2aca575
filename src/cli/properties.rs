//! `-D COMMAND NAME VALUE` (and `-D COMMAND user-property KEY VALUE`), mosquitto's spelling of
//! MQTT 5 properties, read into the packets that carry them. Which property a packet may carry
//! is the spec's table (MQTT 5.0 §2.2.2.2); a value out of its range is refused here, before
//! anything is sent.

use anyhow::Result;
use bytes::Bytes;

use crate::connection::{ConnectProperties, Properties, SubscribeProperties};
use crate::exit::usage;
use crate::topic;

/// Every `-D` of a run, by the packet that carries it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PacketProperties {
    pub connect: ConnectProperties,
    /// CONNECT's session expiry, kept apart: `-x` says the same.
    pub session_expiry: Option<u32>,
    pub publish: Properties,
    pub subscribe: SubscribeProperties,
    pub unsubscribe: Vec<(String, String)>,
    pub will: Properties,
    pub will_delay: Option<u32>,
    /// Which packets any `-D` named, for the checks that depend on the subcommand.
    pub named: Vec<Packet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    Connect,
    Publish,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Will,
}

impl Packet {
    fn parse(s: &str) -> Result<Packet> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "connect" => Packet::Connect,
            "publish" => Packet::Publish,
            "subscribe" => Packet::Subscribe,
            "unsubscribe" => Packet::Unsubscribe,
            "disconnect" => Packet::Disconnect,
            "will" => Packet::Will,
            _ => {
                return Err(usage(format!(
                    "-D {s}: not a packet that carries properties: use CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT or WILL"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Packet::Connect => "CONNECT",
            Packet::Publish => "PUBLISH",
            Packet::Subscribe => "SUBSCRIBE",
            Packet::Unsubscribe => "UNSUBSCRIBE",
            Packet::Disconnect => "DISCONNECT",
            Packet::Will => "WILL",
        }
    }

    /// The properties the spec lets this packet carry (as a client sends it).
    fn allows(self) -> &'static [&'static str] {
        match self {
            Packet::Connect => &[
                "session-expiry-interval",
                "receive-maximum",
                "maximum-packet-size",
                "topic-alias-maximum",
                "request-response-information",
                "request-problem-information",
                "user-property",
                "authentication-method",
                "authentication-data",
            ],
            Packet::Publish => &[
                "payload-format-indicator",
                "message-expiry-interval",
                "topic-alias",
                "response-topic",
                "correlation-data",
                "user-property",
                "content-type",
            ],
            Packet::Will => &[
                "will-delay-interval",
                "payload-format-indicator",
                "message-expiry-interval",
                "content-type",
                "response-topic",
                "correlation-data",
                "user-property",
            ],
            Packet::Subscribe => &["subscription-identifier", "user-property"],
            Packet::Unsubscribe => &["user-property"],
            Packet::Disconnect => &["session-expiry-interval", "reason-string", "user-property"],
        }
    }
}

/// Every property name mosquitto's -D knows, for telling a misspelling from a misplacement.
const NAMES: &[&str] = &[
    "authentication-data",
    "authentication-method",
    "content-type",
    "correlation-data",
    "maximum-packet-size",
    "message-expiry-interval",
    "payload-format-indicator",
    "reason-string",
    "receive-maximum",
    "request-problem-information",
    "request-response-information",
    "response-topic",
    "session-expiry-interval",
    "subscription-identifier",
    "topic-alias",
    "topic-alias-maximum",
    "user-property",
    "will-delay-interval",
];

/// Reads every `-D` occurrence (3 values, or 4 for user-property).
pub fn parse(occurrences: &[Vec<String>]) -> Result<PacketProperties> {
    let mut p = PacketProperties::default();
    for values in occurrences {
        let (packet, name, rest) = match values.as_slice() {
            [packet, name, rest @ ..] => (Packet::parse(packet)?, name.to_ascii_lowercase(), rest),
            _ => {
                return Err(usage(
                    "-D takes COMMAND NAME VALUE, e.g. -D PUBLISH content-type text/plain",
                ))
            }
        };
        let what = format!("-D {} {name}", packet.name());
        if !NAMES.contains(&name.as_str()) {
            return Err(usage(format!(
                "{what}: no such MQTT 5 property: use one of {}",
                packet.allows().join(", ")
            )));
        }
        if !packet.allows().contains(&name.as_str()) {
            return Err(usage(format!(
                "{what}: a {} packet cannot carry {name}: it may carry {}",
                packet.name(),
                packet.allows().join(", ")
            )));
        }
        if packet == Packet::Disconnect {
            return Err(usage(format!(
                "{what}: mqttcli cannot send DISCONNECT properties yet (rumqttc 0.25.1 sends a bare DISCONNECT; bytebeamio/rumqtt#887): leave it out"
            )));
        }
        let value = match (name.as_str(), rest) {
            ("user-property", [key, value]) => {
                let pair = (key.clone(), value.clone());
                match packet {
                    Packet::Connect => p.connect.user_properties.push(pair),
                    Packet::Publish => p.publish.user_properties.push(pair),
                    Packet::Will => p.will.user_properties.push(pair),
                    Packet::Subscribe => p.subscribe.user_properties.push(pair),
                    Packet::Unsubscribe => p.unsubscribe.push(pair),
                    Packet::Disconnect => unreachable!("refused above"),
                }
                if !p.named.contains(&packet) {
                    p.named.push(packet);
                }
                continue;
            }
            ("user-property", _) => {
                return Err(usage(format!(
                    "{what} takes a KEY and a VALUE: -D {} user-property KEY VALUE",
                    packet.name()
                )))
            }
            (_, [value]) => value.as_str(),
            _ => {
                return Err(usage(format!(
                    "{what} takes one VALUE: -D {} {name} VALUE",
                    packet.name()
                )))
            }
        };
        if !p.named.contains(&packet) {
            p.named.push(packet);
        }
        set(&mut p, packet, &name, value, &what)?;
    }
    Ok(p)
}

fn set(
    p: &mut PacketProperties,
    packet: Packet,
    name: &str,
    value: &str,
    what: &str,
) -> Result<()> {
    fn message(p: &mut PacketProperties, packet: Packet) -> &mut Properties {
        match packet {
            Packet::Will => &mut p.will,
            _ => &mut p.publish,
        }
    }
    let n = |min, max| number(value, min, max, what);
    // Each property may appear once per packet.
    macro_rules! put {
        ($slot:expr, $value:expr) => {
            once(&mut $slot, $value, what)
        };
    }
    match name {
        "session-expiry-interval" => put!(p.session_expiry, n(0, u32::MAX)?),
        "receive-maximum" => put!(p.connect.receive_maximum, n(1, 65535)? as u16),
        "maximum-packet-size" => put!(p.connect.maximum_packet_size, n(1, 268_435_455)?),
        "topic-alias-maximum" => put!(p.connect.topic_alias_maximum, n(0, 65535)? as u16),
        "request-response-information" => {
            put!(p.connect.request_response_information, n(0, 1)? as u8)
        }
        "request-problem-information" => {
            put!(p.connect.request_problem_information, n(0, 1)? as u8)
        }
        "authentication-method" => put!(p.connect.authentication_method, value.to_string()),
        "authentication-data" => put!(
            p.connect.authentication_data,
            Bytes::copy_from_slice(value.as_bytes())
        ),
        "will-delay-interval" => put!(p.will_delay, n(0, u32::MAX)?),
        "subscription-identifier" => put!(p.subscribe.identifier, n(1, 268_435_455)?),
        "payload-format-indicator" => {
            put!(message(p, packet).payload_format_indicator, n(0, 1)? as u8)
        }
        "message-expiry-interval" => {
            put!(message(p, packet).message_expiry_interval, n(0, u32::MAX)?)
        }
        "content-type" => put!(message(p, packet).content_type, value.to_string()),
        "response-topic" => {
            let t = topic::parse_topic(value).map_err(|e| usage(format!("{what}: {e}")))?;
            put!(message(p, packet).response_topic, t)
        }
        "correlation-data" => put!(
            message(p, packet).correlation_data,
            Bytes::copy_from_slice(value.as_bytes())
        ),
        "topic-alias" => put!(p.publish.topic_alias, n(1, 65535)? as u16),
        _ => unreachable!("{name} is checked against the packet's table"),
    }
}

/// A property that may appear once per packet, given once.
fn once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<()> {
    if slot.is_some() {
        return Err(usage(format!("{what} is given twice: give it once")));
    }
    *slot = Some(value);
    Ok(())
}

fn number(value: &str, min: u32, max: u32, what: &str) -> Result<u32> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        // Too large for u32 is out of range too; "ten" or "-1" is not a number at all.
        _ if digits => Err(usage(format!(
            "{what} '{value}' is out of range: give a whole number from {min} to {max}"
        ))),
        _ => Err(usage(format!(
            "{what} '{value}' is not a whole number: give one from {min} to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(args: &[&[&str]]) -> Result<PacketProperties> {
        let occ: Vec<Vec<String>> = args
            .iter()
            .map(|a| a.iter().map(|s| s.to_string()).collect())
            .collect();
        parse(&occ)
    }

    fn err(args: &[&[&str]]) -> String {
        let e = d(args).unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
        e.to_string()
    }

    #[test]
    fn properties_land_on_their_packets() {
        let p = d(&[
            &["PUBLISH", "content-type", "text/plain"],
            &["publish", "user-property", "k", "v1"],
            &["PUBLISH", "user-property", "k", "v2"],
            &["CONNECT", "receive-maximum", "10"],
            &["CONNECT", "session-expiry-interval", "60"],
            &["WILL", "will-delay-interval", "5"],
            &["WILL", "content-type", "x"],
            &["SUBSCRIBE", "subscription-identifier", "7"],
            &["UNSUBSCRIBE", "user-property", "a", "b"],
        ])
        .unwrap();
        assert_eq!(p.publish.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            p.publish.user_properties,
            [("k".into(), "v1".into()), ("k".into(), "v2".into())]
        );
        assert_eq!(p.connect.receive_maximum, Some(10));
        assert_eq!(p.session_expiry, Some(60));
        assert_eq!(
            (p.will_delay, p.will.content_type.as_deref()),
            (Some(5), Some("x"))
        );
        assert_eq!(p.subscribe.identifier, Some(7));
        assert_eq!(p.unsubscribe, [("a".into(), "b".into())]);
        assert_eq!(p.named.len(), 5);
    }

    #[test]
    fn bad_properties_say_what_to_do() {
        assert_eq!(
            err(&[&["PUBLISH", "receive-maximum", "5"]]),
            "-D PUBLISH receive-maximum: a PUBLISH packet cannot carry receive-maximum: it may carry payload-format-indicator, message-expiry-interval, topic-alias, response-topic, correlation-data, user-property, content-type"
        );
        assert!(err(&[&["PUBLISH", "colour", "red"]])
            .starts_with("-D PUBLISH colour: no such MQTT 5 property"));
        assert!(err(&[&["PUBACK", "content-type", "x"]]).contains("use CONNECT, PUBLISH"));
        assert_eq!(
            err(&[&["CONNECT", "receive-maximum", "0"]]),
            "-D CONNECT receive-maximum '0' is out of range: give a whole number from 1 to 65535"
        );
        assert!(err(&[&["PUBLISH", "topic-alias", "70000"]]).contains("from 1 to 65535"));
        assert_eq!(
            err(&[&["CONNECT", "receive-maximum", "-1"]]),
            "-D CONNECT receive-maximum '-1' is not a whole number: give one from 1 to 65535"
        );
        assert!(err(&[&["PUBLISH", "payload-format-indicator", "2"]]).contains("from 0 to 1"));
        assert!(err(&[&["PUBLISH", "user-property", "k"]]).contains("takes a KEY and a VALUE"));
        assert!(err(&[&["PUBLISH", "content-type", "a", "b"]]).contains("takes one VALUE"));
        assert!(err(&[&["PUBLISH", "response-topic", "a/#"]])
            .starts_with("-D PUBLISH response-topic: "));
        assert!(err(&[&["DISCONNECT", "user-property", "k", "v"]]).contains("rumqtt#887"));
        assert_eq!(
            err(&[
                &["PUBLISH", "content-type", "a"],
                &["PUBLISH", "content-type", "b"]
            ]),
            "-D PUBLISH content-type is given twice: give it once"
        );
    }
}
