//! Where a message's bytes come from (`-m`, `-f`, `-s`, `-n`; shared by `pub` and `rr`), and
//! `-m`'s placeholders: `{n}` or `{counter}` (a counter from 0; clap's help turns a literal
//! `{n}` into a newline, so help shows the long form), `{time}` (RFC 3339, UTC), `{unix}` and
//! `{unix_ms}`. Anything else in braces stays as typed, so JSON payloads such as `{"a":1}`
//! go out untouched.

use std::path::PathBuf;

use anyhow::Result;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::exit::usage;

/// A payload as the flags name it, read only by [`Source::load`].
#[derive(Debug, Clone)]
pub enum Source {
    /// `-m`: placeholders filled in unless `literal`.
    Message { text: String, literal: bool },
    /// `-f`: the whole file, binary-safe.
    File(PathBuf),
    /// `-s`: all of stdin.
    Stdin,
    /// `-n`: an empty payload.
    Empty,
}

impl Source {
    /// Reads the file or stdin now, before connecting: a bad input is a usage error, not a
    /// half-done run.
    pub async fn load(&self) -> Result<Payload> {
        Ok(match self {
            Source::Message { text, literal } => Payload::from_message(text, *literal),
            Source::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| {
                    usage(format!(
                        "cannot read {}: {e}: check the path given with -f",
                        path.display()
                    ))
                })?;
                Payload::Fixed(Bytes::from(bytes))
            }
            Source::Stdin => {
                let mut buf = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
                Payload::Fixed(Bytes::from(buf))
            }
            Source::Empty => Payload::Fixed(Bytes::new()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Counter,
    Time,
    Unix,
    UnixMs,
}

#[derive(Debug, Clone)]
pub enum Payload {
    /// Sent as is, every time.
    Fixed(Bytes),
    Template(Vec<Part>),
}

impl Payload {
    pub fn from_message(message: &str, literal: bool) -> Payload {
        if literal {
            return Payload::Fixed(Bytes::copy_from_slice(message.as_bytes()));
        }
        let parts = parse(message);
        if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
            Payload::Fixed(Bytes::copy_from_slice(message.as_bytes()))
        } else {
            Payload::Template(parts)
        }
    }

    pub fn render(&self, n: u64) -> Bytes {
        match self {
            Payload::Fixed(b) => b.clone(),
            Payload::Template(parts) => {
                let now = jiff::Timestamp::now();
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Literal(s) => out.push_str(s),
                        Part::Counter => out.push_str(&n.to_string()),
                        Part::Time => out.push_str(&format!("{now:.3}")),
                        Part::Unix => out.push_str(&now.as_second().to_string()),
                        Part::UnixMs => out.push_str(&now.as_millisecond().to_string()),
                    }
                }
                Bytes::from(out)
            }
        }
    }
}

fn parse(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        lit.push_str(&rest[..open]);
        let after = &rest[open..];
        let known = [
            ("{n}", Part::Counter),
            ("{counter}", Part::Counter),
            ("{time}", Part::Time),
            ("{unix}", Part::Unix),
            ("{unix_ms}", Part::UnixMs),
        ]
        .into_iter()
        .find(|(name, _)| after.starts_with(name));
        match known {
            Some((name, part)) => {
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &after[name.len()..];
            }
            None => {
                lit.push('{');
                rest = &after[1..];
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_fills_in() {
        let p = Payload::from_message("messages: {n}", false);
        assert_eq!(p.render(0), "messages: 0");
        assert_eq!(p.render(41), "messages: 41");
        assert_eq!(Payload::from_message("{counter}", false).render(2), "2");
    }

    #[test]
    fn json_and_unknown_braces_stay() {
        let p = Payload::from_message(r#"{"a":{n},"b":"{x}"}"#, false);
        assert_eq!(p.render(7), r#"{"a":7,"b":"{x}"}"#);
        assert!(matches!(
            Payload::from_message("{}", false),
            Payload::Fixed(_)
        ));
    }

    #[test]
    fn literal_means_literal() {
        assert_eq!(Payload::from_message("{n}", true).render(3), "{n}");
    }

    #[test]
    fn time_placeholders() {
        let p = Payload::from_message("{unix} {unix_ms} {time}", false);
        let out = String::from_utf8(p.render(0).to_vec()).unwrap();
        let fields: Vec<&str> = out.split(' ').collect();
        assert!(fields[0].parse::<i64>().unwrap() > 1_700_000_000);
        assert!(fields[1].parse::<i64>().unwrap() > 1_700_000_000_000);
        assert!(fields[2].ends_with('Z') && fields[2].contains('T'));
    }
}
