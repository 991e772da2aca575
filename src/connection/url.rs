//! `-L mqtt://[user[:pass]@]host[:port][/topic]`, and `mqtts://` likewise; `ws://` and `wss://`
//! URLs carry the WebSocket path instead of a topic.
//!
//! Parsed by hand rather than with the `url` crate: a topic in the path may hold `#`, which a URL
//! parser would take for a fragment.

use percent_encoding::percent_decode_str;

use crate::secret::Secret;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    #[default]
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Scheme {
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    pub fn websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BrokerUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub topic: Option<String>,
    /// ws:// and wss:// only.
    pub ws_path: Option<String>,
}

/// `scheme://rest`, where the scheme is a scheme (RFC 3986: a letter, then letters, digits,
/// `+`, `-`, `.`), not the start of a userinfo that happens to hold `://`.
pub fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some((scheme, rest))
}

pub fn parse(input: &str) -> Result<BrokerUrl, String> {
    let (scheme, rest) = split_scheme(input).ok_or_else(|| {
        "the URL has no scheme: write it as mqtt://[user[:pass]@]host[:port][/topic]".to_string()
    })?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => Scheme::Mqtt,
        "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        _ => {
            return Err(format!(
                "unknown URL scheme '{scheme}': use mqtt://, mqtts://, ws:// or wss://"
            ))
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport).map_err(|e| {
        // Past an '@' the host part may really be a password with '/' in it
        // (mqtt://u:pa/ss@h): name the problem without echoing any of it.
        if rest.contains('@') {
            "the URL's host or port cannot be read: if the user or password holds '/', '@' or ':', percent-encode them (%2F, %40, %3A)".to_string()
        } else {
            e
        }
    })?;
    if host.is_empty() {
        return Err(format!("the URL '{}' has no host", redact(input)));
    }
    let decode = |s: &str| -> Result<String, String> {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                "the URL's user or password is not valid UTF-8 after percent-decoding".to_string()
            })
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(ui) => match ui.split_once(':') {
            Some((u, p)) => (Some(decode(u)?), Some(Secret::new(decode(p)?))),
            None => (Some(decode(ui)?), None),
        },
    };
    let path = path.filter(|p| !p.is_empty()).map(str::to_string);
    let (topic, ws_path) = if scheme.websocket() {
        (None, path.map(|p| format!("/{p}")))
    } else {
        (path, None)
    };
    Ok(BrokerUrl {
        scheme,
        ws_path,
        host: host.to_string(),
        port,
        username: username.filter(|u| !u.is_empty()),
        password,
        topic,
    })
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    // [v6addr]:port
    if let Some(rest) = hostport.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in URL host '{hostport}'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected '{after}' after the URL host")),
        };
        return Ok((addr, port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(parse_port(p)?))),
        None => Ok((hostport, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("'{p}' in the URL is not a port number (1-65535)"))
}

/// The URL with any password replaced, fit for an error message. It may hide more than the
/// password (a path holding `@`), never less: a password with an unencoded `/` in it, or a URL
/// without a scheme (a proxy given as `user:pass@host`), is hidden too.
pub fn redact(input: &str) -> String {
    let (prefix, rest) = match split_scheme(input) {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), input),
    };
    match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{prefix}{user}:***{}", &rest[at..]),
            None => input.to_string(),
        },
        None => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let u = parse("mqtt://al%40ice:p%3Ass@broker.emqx.io:1884/python/mqtt").unwrap();
        assert_eq!(u.host, "broker.emqx.io");
        assert_eq!(u.port, Some(1884));
        assert_eq!(u.username.as_deref(), Some("al@ice"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p:ss"));
        assert_eq!(u.topic.as_deref(), Some("python/mqtt"));
    }

    #[test]
    fn minimal_and_wildcard_paths() {
        assert_eq!(
            parse("mqtt://localhost").unwrap(),
            BrokerUrl {
                host: "localhost".into(),
                ..Default::default()
            }
        );
        assert_eq!(parse("mqtt://h/a/#").unwrap().topic.as_deref(), Some("a/#"));
        assert_eq!(parse("tcp://[::1]:1883").unwrap().host, "::1");
        assert_eq!(parse("mqtt://u@h").unwrap().username.as_deref(), Some("u"));
    }

    #[test]
    fn schemes() {
        let u = parse("mqtts://h:8884/t").unwrap();
        assert_eq!((u.scheme, u.topic.as_deref()), (Scheme::Mqtts, Some("t")));
        let u = parse("wss://h/custom/path").unwrap();
        assert_eq!(u.scheme, Scheme::Wss);
        assert_eq!(
            (u.topic, u.ws_path.as_deref()),
            (None, Some("/custom/path"))
        );
        assert_eq!(parse("ws://h").unwrap().ws_path, None);
        assert!(Scheme::Wss.tls() && Scheme::Wss.websocket() && !Scheme::Mqtt.tls());
    }

    #[test]
    fn errors_name_the_fix() {
        assert!(parse("localhost:1883").unwrap_err().contains("mqtt://"));
        assert!(parse("http://h")
            .unwrap_err()
            .contains("unknown URL scheme"));
        assert!(parse("foo://h")
            .unwrap_err()
            .contains("use mqtt://, mqtts://"));
        assert!(parse("mqtt://h:99999").unwrap_err().contains("not a port"));
        assert!(parse("mqtt://u:secret@:1883")
            .unwrap_err()
            .contains("no host"));
        assert!(!parse("mqtt://u:secret@:1883")
            .unwrap_err()
            .contains("secret"));
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(redact("mqtt://u:secret@h:1/t"), "mqtt://u:***@h:1/t");
        assert_eq!(redact("mqtt://h/a@b"), "mqtt://h/a@b");
        assert_eq!(redact("mqtt://u:pa/ss@h"), "mqtt://u:***@h");
        assert_eq!(redact("u:secret@proxy:x"), "u:***@proxy:x");
    }

    #[test]
    fn a_password_with_a_slash_is_not_echoed() {
        let e = parse("mqtt://u:s3cr/et@h").unwrap_err();
        assert!(!e.contains("s3cr") && !e.contains("et@"), "{e}");
        assert!(e.contains("percent-encode"), "{e}");
    }
}
