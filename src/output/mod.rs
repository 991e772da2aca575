//! Everything `sub` writes to stdout. One buffered writer, flushed by the caller whenever no
//! further message is already waiting, so `sub | jq` is live without a syscall per message
//! in a burst. `--json`'s record is also read back, by `pub --jsonl` (`record.rs`).

mod closed;
pub mod record;
pub mod template;

pub use closed::stdout_closed;

use std::io::{self, Write};

use base64::Engine;

use crate::connection::{Message, Properties};
use template::Token;

pub enum Mode {
    /// Payload only (mosquitto's default).
    Payload,
    /// `topic payload`.
    Verbose,
    Template(Vec<Token>),
    Json,
}

/// How every message is printed: `sub`'s and `rr`'s output flags, settled.
pub struct Format {
    pub mode: Mode,
    /// A newline after each message (not with `-N`).
    pub newline: bool,
}

/// A printer on stdout, buffered: the caller flushes when no further message is waiting.
pub fn stdout_printer(format: Format) -> Printer<io::BufWriter<io::StdoutLock<'static>>> {
    Printer::new(
        io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        format.mode,
        format.newline,
    )
}

/// What a failed write to stdout means. A reader that went away (`| head -1`) is a normal end:
/// `Ok`. Anything else (a full disk, a closed file) is an error exit with the reason.
pub fn write_failed(err: io::Error) -> anyhow::Result<()> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(crate::exit::fail(
            crate::exit::Exit::Other,
            format!("cannot write to stdout: {err}"),
        ))
    }
}

pub struct Printer<W: Write> {
    out: W,
    mode: Mode,
    newline: bool,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, mode: Mode, newline: bool) -> Self {
        Printer { out, mode, newline }
    }

    pub fn print(&mut self, msg: &Message) -> io::Result<()> {
        let out = &mut self.out;
        match &self.mode {
            Mode::Payload => out.write_all(&msg.payload)?,
            Mode::Verbose => {
                out.write_all(msg.topic.as_bytes())?;
                out.write_all(b" ")?;
                out.write_all(&msg.payload)?;
            }
            Mode::Template(tokens) => {
                for token in tokens {
                    match token {
                        Token::Literal(s) => out.write_all(s.as_bytes())?,
                        Token::Topic => out.write_all(msg.topic.as_bytes())?,
                        Token::Payload => out.write_all(&msg.payload)?,
                        Token::Qos => write!(out, "{}", msg.qos)?,
                        Token::Retain => write!(out, "{}", u8::from(msg.retain))?,
                        Token::Len => write!(out, "{}", msg.payload.len())?,
                        Token::Time => write!(out, "{}", now())?,
                        Token::Hex => write_hex(out, &msg.payload)?,
                        Token::Props => write_properties(out, msg.properties.as_ref())?,
                    }
                }
            }
            Mode::Json => {
                write_json(out, msg)?;
                // One object per line whatever -N says: JSON Lines needs the newline.
                return out.write_all(b"\n");
            }
        }
        if self.newline {
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn now() -> impl std::fmt::Display {
    struct Millis(jiff::Timestamp);
    impl std::fmt::Display for Millis {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:.3}", self.0)
        }
    }
    Millis(jiff::Timestamp::now())
}

fn write_hex(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 512];
    for chunk in bytes.chunks(256) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out.write_all(&buf[..2 * chunk.len()])?;
    }
    Ok(())
}

fn json_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(io::Error::from)
}

/// Payload as UTF-8 text when it is, base64 otherwise, and the key says which, so binary
/// payloads survive a trip through `jq`.
fn write_json(out: &mut impl Write, msg: &Message) -> io::Result<()> {
    out.write_all(b"{\"topic\":")?;
    json_str(out, &msg.topic)?;
    write!(
        out,
        ",\"qos\":{},\"retain\":{},\"time\":\"{}\",",
        msg.qos,
        msg.retain,
        now()
    )?;
    match std::str::from_utf8(&msg.payload) {
        Ok(text) => {
            out.write_all(b"\"encoding\":\"utf8\",\"payload\":")?;
            json_str(out, text)?;
        }
        Err(_) => {
            out.write_all(b"\"encoding\":\"base64\",\"payload\":\"")?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&msg.payload);
            out.write_all(encoded.as_bytes())?;
            out.write_all(b"\"")?;
        }
    }
    if let Some(props) = &msg.properties {
        out.write_all(b",\"properties\":")?;
        write_properties(out, Some(props))?;
    }
    out.write_all(b"}")
}

fn write_properties(out: &mut impl Write, props: Option<&Properties>) -> io::Result<()> {
    let value = props.map_or_else(|| serde_json::json!({}), properties_json);
    serde_json::to_writer(out, &value).map_err(io::Error::from)
}

fn properties_json(p: &Properties) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    if let Some(v) = p.payload_format_indicator {
        map.insert("payload_format_indicator".into(), v.into());
    }
    if let Some(v) = p.message_expiry_interval {
        map.insert("message_expiry_interval".into(), v.into());
    }
    if let Some(v) = &p.content_type {
        map.insert("content_type".into(), v.clone().into());
    }
    if let Some(v) = &p.response_topic {
        map.insert("response_topic".into(), v.clone().into());
    }
    if let Some(v) = &p.correlation_data {
        match std::str::from_utf8(v) {
            Ok(s) => map.insert("correlation_data".into(), s.into()),
            Err(_) => map.insert(
                "correlation_data_base64".into(),
                base64::engine::general_purpose::STANDARD.encode(v).into(),
            ),
        };
    }
    if !p.user_properties.is_empty() {
        // Pairs, not an object: MQTT allows a key to repeat, and order matters.
        let pairs = p
            .user_properties
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect();
        map.insert("user_properties".into(), serde_json::Value::Array(pairs));
    }
    if !p.subscription_identifiers.is_empty() {
        map.insert(
            "subscription_identifiers".into(),
            p.subscription_identifiers.clone().into(),
        );
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(payload: &'static [u8], props: Option<Properties>) -> Message {
        Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(payload),
            qos: crate::connection::Qos::AtLeastOnce,
            retain: true,
            properties: props,
            ack: None,
        }
    }

    fn render(mode: Mode, newline: bool, m: &Message) -> String {
        let mut p = Printer::new(Vec::new(), mode, newline);
        p.print(m).unwrap();
        String::from_utf8(p.out).unwrap()
    }

    #[test]
    fn plain_and_verbose() {
        assert_eq!(render(Mode::Payload, true, &msg(b"hi", None)), "hi\n");
        assert_eq!(render(Mode::Payload, false, &msg(b"hi", None)), "hi");
        assert_eq!(render(Mode::Verbose, true, &msg(b"hi", None)), "a/b hi\n");
    }

    #[test]
    fn template_fields() {
        let t = template::parse("{topic}|{qos}|{retain}|{len}|{hex}|{payload}").unwrap();
        assert_eq!(
            render(Mode::Template(t), true, &msg(b"\x01A", None)),
            "a/b|1|1|2|0141|\x01A\n"
        );
    }

    #[test]
    fn json_text_and_binary() {
        let text: serde_json::Value =
            serde_json::from_str(&render(Mode::Json, false, &msg(b"hi \"x\"", None))).unwrap();
        assert_eq!(text["payload"], "hi \"x\"");
        assert_eq!(text["encoding"], "utf8");
        assert_eq!(text["retain"], true);
        assert!(text["time"].as_str().unwrap().ends_with('Z'));
        assert!(text.get("properties").is_none());

        let props = Properties {
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
            ..Default::default()
        };
        let out = render(Mode::Json, false, &msg(b"\xff\x00", Some(props)));
        assert!(out.ends_with("}\n"));
        let bin: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(bin["encoding"], "base64");
        assert_eq!(bin["payload"], "/wA=");
        assert_eq!(bin["properties"]["content_type"], "text/plain");
        assert_eq!(
            bin["properties"]["user_properties"],
            serde_json::json!([["k", "v1"], ["k", "v2"]])
        );
    }
}
