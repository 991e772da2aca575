//! `sub --json`'s record read back, for `pub --jsonl`: the same field names as `write_json`
//! writes (beside it, in `mod.rs`), so that a recording replays byte for byte. Unknown fields
//! are ignored (a record may be annotated, or come from a newer mqttcli); a field that is
//! there must mean what it says: a bad value is an error, never a guess.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;

use crate::connection::{Properties, Qos};
use crate::topic;

/// One line of a recording, as given; what it lacks, the caller fills in from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: Option<String>,
    pub payload: Bytes,
    pub qos: Option<Qos>,
    pub retain: Option<bool>,
    /// None if absent or empty (every MQTT 5 message is recorded with `"properties":{}`).
    pub properties: Option<Properties>,
    /// Read only when asked (`--speed`): parsing it costs time on a fast replay.
    pub time: Option<jiff::Timestamp>,
}

/// Borrowed where the JSON has no escapes: the common case costs no copy until the payload.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    encoding: Option<Cow<'a, str>>,
    /// Any JSON value, so that `"qos": 3` or `"qos": "1"` gets a message about QoS rather
    /// than about types.
    #[serde(default)]
    qos: Option<serde_json::Value>,
    #[serde(default)]
    retain: Option<bool>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    properties: Option<RawProperties<'a>>,
}

/// The PUBLISH properties `properties_json` writes. `subscription_identifiers` is left out on
/// purpose: the broker adds them on delivery, and a client must not send them.
#[derive(Deserialize)]
struct RawProperties<'a> {
    #[serde(default)]
    payload_format_indicator: Option<u8>,
    #[serde(default)]
    message_expiry_interval: Option<u32>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    response_topic: Option<String>,
    #[serde(default)]
    correlation_data: Option<String>,
    #[serde(borrow, default)]
    correlation_data_base64: Option<Cow<'a, str>>,
    /// Pairs, as written: a key may repeat, and order matters.
    #[serde(default)]
    user_properties: Vec<(String, String)>,
}

/// Parses one line (without its newline). The error says what is wrong and how to write it
/// right; the caller adds the line number. A text payload without escapes is a slice of
/// `line`, not a copy.
pub fn parse(line: &Bytes, with_time: bool) -> Result<Record, String> {
    let raw: Raw = serde_json::from_slice(line.as_ref()).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not JSON ({e}): give one JSON object per line, as `sub --json` writes")
        } else {
            format!("not a record as `sub --json` writes it: {e}")
        }
    })?;
    let topic = match raw.topic {
        Some(t) => Some(topic::parse_topic(&t)?),
        None => None,
    };
    let text = raw.payload.ok_or(
        "no \"payload\" field: every record needs one (\"payload\":\"\" for an empty message)",
    )?;
    let payload = match raw.encoding.as_deref() {
        None | Some("utf8") => match text {
            Cow::Borrowed(s) => line.slice_ref(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s.into_bytes()),
        },
        Some("base64") => Bytes::from(base64(&text, "payload")?),
        Some(other) => {
            return Err(format!(
                "encoding {other:?} is unknown: use \"utf8\" or \"base64\", as `sub --json` writes"
            ))
        }
    };
    let qos = raw.qos.map(qos).transpose()?;
    let time = match (with_time, raw.time) {
        (true, Some(t)) => Some(t.parse::<jiff::Timestamp>().map_err(|e| {
            format!("time {t:?} is not an RFC 3339 time ({e}): write it as sub --json does, e.g. 2026-01-02T03:04:05.678Z")
        })?),
        _ => None,
    };
    let properties = match raw.properties {
        Some(p) => properties(p)?,
        None => None,
    };
    Ok(Record {
        topic,
        payload,
        qos,
        retain: raw.retain,
        properties,
        time,
    })
}

fn qos(v: serde_json::Value) -> Result<Qos, String> {
    match v.as_u64() {
        Some(0) => Ok(Qos::AtMostOnce),
        Some(1) => Ok(Qos::AtLeastOnce),
        Some(2) => Ok(Qos::ExactlyOnce),
        _ => Err(format!("qos {v} is out of range: use 0, 1 or 2")),
    }
}

fn base64(text: &str, field: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{field} is not valid base64 ({e}): give it in standard base64, as `sub --json` writes"))
}

fn properties(p: RawProperties) -> Result<Option<Properties>, String> {
    if let Some(v) = p.payload_format_indicator.filter(|v| *v > 1) {
        return Err(format!(
            "payload_format_indicator {v} is out of range: use 0 (bytes) or 1 (UTF-8 text)"
        ));
    }
    let response_topic = match p.response_topic {
        Some(t) => Some(topic::parse_topic(&t).map_err(|e| format!("response_topic: {e}"))?),
        None => None,
    };
    let correlation_data = match (p.correlation_data, p.correlation_data_base64) {
        (Some(_), Some(_)) => {
            return Err(
                "both correlation_data and correlation_data_base64: give one of them".to_string(),
            )
        }
        (Some(text), None) => Some(Bytes::from(text.into_bytes())),
        (None, Some(b64)) => Some(Bytes::from(base64(&b64, "correlation_data_base64")?)),
        (None, None) => None,
    };
    let props = Properties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type,
        response_topic,
        correlation_data,
        user_properties: p.user_properties,
        ..Properties::default()
    };
    Ok((props != Properties::default()).then_some(props))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Message;
    use crate::output::{Mode, Printer};

    fn ok(line: &str) -> Record {
        parse(&Bytes::copy_from_slice(line.as_bytes()), true)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(line: &str) -> String {
        parse(&Bytes::copy_from_slice(line.as_bytes()), true).expect_err(line)
    }

    /// What `sub --json` prints for `m`, read back.
    fn round_trip(m: &Message) -> Record {
        let mut p = Printer::new(Vec::new(), Mode::Json, true);
        p.print(m).unwrap();
        let out = p.out;
        assert_eq!(out.last(), Some(&b'\n'));
        ok(std::str::from_utf8(&out[..out.len() - 1]).unwrap())
    }

    #[test]
    fn what_sub_json_writes_reads_back_exactly() {
        let props = Properties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(3600),
            content_type: Some("application/octet-stream".into()),
            response_topic: Some("replies/1".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01\xff")),
            user_properties: vec![
                ("k".into(), "v1".into()),
                ("other".into(), "x \"y\"".into()),
                ("k".into(), "v2".into()),
            ],
            // Added by the broker on delivery: not sent again.
            subscription_identifiers: vec![7],
            topic_alias: None,
        };
        let m = Message {
            topic: "a/b ü".into(),
            payload: Bytes::from_static(b"\xff\x00\x80binary\n"),
            qos: Qos::ExactlyOnce,
            retain: true,
            properties: Some(props.clone()),
            ack: None,
        };
        let r = round_trip(&m);
        assert_eq!(r.topic.as_deref(), Some("a/b ü"));
        assert_eq!(r.payload, m.payload);
        assert_eq!((r.qos, r.retain), (Some(Qos::ExactlyOnce), Some(true)));
        assert!(r.time.is_some());
        let expected = Properties {
            subscription_identifiers: vec![],
            ..props
        };
        assert_eq!(r.properties, Some(expected));

        // Text payload, text correlation data, and a v5 message without properties.
        let m = Message {
            topic: "t".into(),
            payload: Bytes::from_static("héllo \"quoted\"\t\\".as_bytes()),
            qos: Qos::AtMostOnce,
            retain: false,
            properties: Some(Properties {
                correlation_data: Some(Bytes::from_static(b"req-1")),
                ..Properties::default()
            }),
            ack: None,
        };
        let r = round_trip(&m);
        assert_eq!(r.payload, m.payload);
        assert_eq!(
            r.properties.unwrap().correlation_data.as_deref(),
            Some(&b"req-1"[..])
        );
        let empty = Message {
            properties: Some(Properties::default()),
            payload: Bytes::new(),
            ..m
        };
        let r = round_trip(&empty);
        assert_eq!((r.properties, r.payload.len()), (None, 0));
    }

    #[test]
    fn missing_fields_are_left_to_the_flags_and_unknown_ones_ignored() {
        let r = ok(r#"{"payload":"x","note":{"any":[1,2]}}"#);
        assert_eq!(r.topic, None);
        assert_eq!((r.qos, r.retain, r.time), (None, None, None));
        assert_eq!(r.payload, "x");
        // Without --speed the time is not read at all.
        let line = Bytes::from_static(br#"{"payload":"x","time":"not read"}"#);
        let r = parse(&line, false).unwrap();
        assert_eq!(r.time, None);
        let r = ok(r#"{"topic":null,"payload":"x","qos":null}"#);
        assert_eq!((r.topic, r.qos), (None, None));
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        for (line, says) in [
            ("hello", "not JSON"),
            (r#"{"topic":"a","payload":"x""#, "not JSON"),
            ("[1,2]", "not a record"),
            (r#"{"topic":1,"payload":"x"}"#, "not a record"),
            (r#"{"topic":"a"}"#, "no \"payload\""),
            (
                r#"{"topic":"a","payload":"%%","encoding":"base64"}"#,
                "payload is not valid base64",
            ),
            (
                r#"{"topic":"a","payload":"x","encoding":"hex"}"#,
                "encoding \"hex\" is unknown",
            ),
            (
                r#"{"topic":"a","payload":"x","qos":3}"#,
                "qos 3 is out of range",
            ),
            (
                r#"{"topic":"a","payload":"x","qos":-1}"#,
                "qos -1 is out of range",
            ),
            (
                r#"{"topic":"a","payload":"x","qos":"1"}"#,
                "qos \"1\" is out of range",
            ),
            (r#"{"topic":"a/#","payload":"x"}"#, "wildcard"),
            (r#"{"topic":"a/+/b","payload":"x"}"#, "wildcard"),
            (r#"{"topic":"","payload":"x"}"#, "empty"),
            (
                r#"{"topic":"a","payload":"x","time":"yesterday"}"#,
                "RFC 3339",
            ),
            (
                r#"{"topic":"a","payload":"x","properties":{"correlation_data":"a","correlation_data_base64":"YQ=="}}"#,
                "give one of them",
            ),
            (
                r#"{"topic":"a","payload":"x","properties":{"correlation_data_base64":"?"}}"#,
                "correlation_data_base64 is not valid base64",
            ),
            (
                r#"{"topic":"a","payload":"x","properties":{"response_topic":"r/#"}}"#,
                "response_topic",
            ),
            (
                r#"{"topic":"a","payload":"x","properties":{"payload_format_indicator":2}}"#,
                "payload_format_indicator 2",
            ),
            (
                r#"{"topic":"a","payload":"x","properties":{"user_properties":{"k":"v"}}}"#,
                "not a record",
            ),
        ] {
            let e = err(line);
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn times_read_as_rfc_3339() {
        let r = ok(r#"{"payload":"","time":"2026-01-02T03:04:05.678Z"}"#);
        assert_eq!(r.time.unwrap().as_millisecond(), 1_767_323_045_678);
        let r = ok(r#"{"payload":"","time":"2026-01-02T04:04:05.678+01:00"}"#);
        assert_eq!(r.time.unwrap().as_millisecond(), 1_767_323_045_678);
    }
}
