//! Proxies: `--proxy`, else `HTTPS_PROXY` / `ALL_PROXY` minus `NO_PROXY`. HTTP CONNECT
//! proxies (`http://`), which rumqttc dials itself, and SOCKS5 proxies (`socks5://`, or
//! `socks5h://` to let the proxy resolve the broker's name), which the relay dials (relay.rs).
//! Loopback hosts never go through an environment proxy: a proxy cannot reach our localhost.

use std::net::IpAddr;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT.
    Http,
    /// SOCKS5 (RFC 1928); `remote_dns`: the proxy resolves the broker's name (`socks5h://`),
    /// else we resolve it and ask for an address (`socks5://`), as curl does.
    Socks5 { remote_dns: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub auth: Option<(String, Secret)>,
}

/// The proxy's URL without its credentials, fit for messages and `-d`.
impl std::fmt::Display for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), as `cli::Environment` read them.
#[derive(Debug, Default, Clone)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub all_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// The proxy to dial `host` through, if any.
pub fn resolve(
    flag: Option<&str>,
    env: &ProxyEnv,
    host: &str,
) -> Result<Option<ProxySettings>, String> {
    if let Some(url) = flag {
        return parse(url, "--proxy").map(Some);
    }
    let (url, origin) = match (&env.https_proxy, &env.all_proxy) {
        (Some(u), _) => (u, "HTTPS_PROXY"),
        (None, Some(u)) => (u, "ALL_PROXY"),
        (None, None) => return Ok(None),
    };
    if is_loopback(host) || no_proxy_matches(env.no_proxy.as_deref().unwrap_or(""), host) {
        return Ok(None);
    }
    parse(url, origin).map(Some)
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// curl's rules: `*` matches everything; an entry matches the host itself and its subdomains,
/// with or without a leading dot.
fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| e == "*" || host == e || host.ends_with(&format!(".{e}")))
}

/// `http://[user[:pass]@]host[:port]`, `socks5://…` or `socks5h://…`; without a scheme, HTTP
/// (as curl). `origin` names where it came from, for the message.
pub fn parse(url: &str, origin: &str) -> Result<ProxySettings, String> {
    let (kind, rest) = match super::url::split_scheme(url) {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (ProxyKind::Http, rest),
            "socks5" => (ProxyKind::Socks5 { remote_dns: false }, rest),
            "socks5h" => (ProxyKind::Socks5 { remote_dns: true }, rest),
            _ => {
                return Err(format!(
                    "{origin}: {scheme}:// proxies are not supported: use http://HOST:PORT (HTTP CONNECT), socks5://HOST:PORT or socks5h://HOST:PORT"
                ))
            }
        },
        None => (ProxyKind::Http, url),
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((userinfo, hp)) => {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (Some((decode(u), Secret::new(decode(p)))), hp)
        }
        None => (None, rest),
    };
    let bad = || {
        format!(
            "{origin}: '{}' is not a proxy address: write http://HOST:PORT or socks5h://HOST:PORT",
            super::url::redact(url)
        )
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        // curl's default proxy port.
        None => (hostport, 1080),
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    if let (ProxyKind::Socks5 { .. }, Some((user, pass))) = (kind, &auth) {
        // RFC 1929: each is 1 to 255 bytes.
        let fits = |n: usize| (1..=255).contains(&n);
        if !fits(user.len()) || !fits(pass.expose().len()) {
            return Err(format!(
                "{origin}: a SOCKS5 proxy's user name and password must each be 1 to 255 bytes: write socks5://USER:PASS@HOST:PORT"
            ));
        }
    }
    Ok(ProxySettings {
        kind,
        host: host.to_string(),
        port,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(https: Option<&str>, all: Option<&str>, no: Option<&str>) -> ProxyEnv {
        ProxyEnv {
            https_proxy: https.map(str::to_string),
            all_proxy: all.map(str::to_string),
            no_proxy: no.map(str::to_string),
        }
    }

    #[test]
    fn flag_beats_env_and_is_used_even_for_loopback() {
        let p = resolve(
            Some("http://p:3128"),
            &env(Some("http://e:1"), None, None),
            "localhost",
        )
        .unwrap();
        assert_eq!(p.unwrap().host, "p");
    }

    #[test]
    fn env_order_and_bypass() {
        let e = env(
            Some("http://h:3128"),
            Some("http://a:1"),
            Some("internal.example, .corp"),
        );
        assert_eq!(
            resolve(None, &e, "broker.emqx.io").unwrap().unwrap().host,
            "h"
        );
        assert_eq!(
            resolve(None, &env(None, Some("http://a:1"), None), "x.org")
                .unwrap()
                .unwrap()
                .host,
            "a"
        );
        assert!(resolve(None, &e, "internal.example").unwrap().is_none());
        assert!(resolve(None, &e, "mq.internal.example").unwrap().is_none());
        assert!(resolve(None, &e, "b.corp").unwrap().is_none());
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(resolve(None, &e, host).unwrap().is_none(), "{host}");
        }
        assert!(
            resolve(None, &env(Some("http://h:1"), None, Some("*")), "x")
                .unwrap()
                .is_none()
        );
        assert!(resolve(None, &env(None, None, None), "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn parsing() {
        let p = parse("http://us%40r:pa%3Ass@proxy.local:8080/", "--proxy").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 8080));
        let (user, pass) = p.auth.unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("us@r", "pa:ss"));
        assert_eq!(parse("proxy.local", "x").unwrap().port, 1080);
        assert!(parse("socks4://p:1", "--proxy")
            .unwrap_err()
            .contains("not supported"));
        let e = parse("http://u:secret@:80", "--proxy").unwrap_err();
        assert!(e.contains("not a proxy address") && !e.contains("secret"));
        // Without a scheme too: the whole value must not be echoed.
        let e = parse("u:secret@proxy.local:x", "HTTPS_PROXY").unwrap_err();
        assert!(
            e.contains("not a proxy address") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn socks5_urls() {
        let p = parse("socks5h://al%40ice:s3cret@proxy.local:1081", "--proxy").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 1081));
        assert_eq!(p.auth.as_ref().unwrap().0, "al@ice");
        // What messages and -d show: no credentials.
        assert_eq!(p.to_string(), "socks5h://proxy.local:1081");
        let p = parse("SOCKS5://proxy.local", "ALL_PROXY").unwrap();
        assert_eq!(
            (p.kind, p.port),
            (ProxyKind::Socks5 { remote_dns: false }, 1080)
        );
        assert_eq!(parse("proxy:3128", "x").unwrap().kind, ProxyKind::Http);
        let long = "x".repeat(256);
        let e = parse(&format!("socks5://u:{long}@p:1"), "--proxy").unwrap_err();
        assert!(e.contains("255") && !e.contains(&long), "{e}");
        let p = resolve(None, &env(None, Some("socks5h://s:1080"), None), "x.org").unwrap();
        assert_eq!(p.unwrap().kind, ProxyKind::Socks5 { remote_dns: true });
    }
}
