//! The relay's way to the broker through a SOCKS5 proxy. tokio-socks speaks the protocol; this
//! decides which address to ask for and puts the proxy's failures into words (the relay hands
//! them on as the reason it could not reach the broker).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::{Error, TargetAddr};

use crate::connection::proxy::{ProxyKind, ProxySettings};

/// A TCP stream to `host:port` through `proxy`. With `socks5h://` the proxy gets the name; with
/// `socks5://` it gets each address the name resolves to here, in turn, until one connects (as
/// a direct dial would try them).
pub async fn connect(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let remote_dns = matches!(proxy.kind, ProxyKind::Socks5 { remote_dns: true });
    let targets: Vec<TargetAddr<'_>> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![TargetAddr::Ip(SocketAddr::new(ip, port))],
        Err(_) if remote_dns => vec![TargetAddr::Domain(host.into(), port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map(|addrs| addrs.map(TargetAddr::Ip).collect())
            .unwrap_or_default(),
    };
    if targets.is_empty() {
        return Err(io::Error::other(format!(
            "cannot resolve host '{host}': check the name given with -h or -L (or let the proxy resolve it: socks5h://)"
        )));
    }
    let mut last = None;
    for target in targets {
        let socket = super::tcp(&proxy.host, proxy.port, source)
            .await
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot connect to the SOCKS5 proxy {proxy}: {e}: check --proxy (or ALL_PROXY)"
                ))
            })?;
        let result = match &proxy.auth {
            Some((user, pass)) => {
                Socks5Stream::connect_with_password_and_socket(socket, target, user, pass.expose())
                    .await
            }
            None => Socks5Stream::connect_with_socket(socket, target).await,
        };
        match result {
            Ok(stream) => return Ok(stream.into_inner()),
            // This address could not be reached; another one of the name's may be.
            Err(
                e @ (Error::HostUnreachable | Error::NetworkUnreachable | Error::ConnectionRefused),
            ) => last = Some(e),
            Err(e) => return Err(explain(proxy, host, port, e)),
        }
    }
    Err(explain(
        proxy,
        host,
        port,
        last.unwrap_or(Error::HostUnreachable),
    ))
}

/// The proxy's refusal in words. Never names the credentials.
fn explain(proxy: &ProxySettings, host: &str, port: u16, e: Error) -> io::Error {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let why = match e {
        Error::PasswordAuthFailure(_) => format!(
            "the SOCKS5 proxy {proxy} refused the user name and password (authentication failed): check them in the proxy URL"
        ),
        Error::NoAcceptableAuthMethods if proxy.auth.is_none() => format!(
            "the SOCKS5 proxy {proxy} wants authentication: give it as socks5://USER:PASS@HOST:PORT"
        ),
        Error::NoAcceptableAuthMethods => format!(
            "the SOCKS5 proxy {proxy} accepts neither no authentication nor a user name and password"
        ),
        Error::ConnectionNotAllowedByRuleset => format!(
            "the SOCKS5 proxy {proxy} refused to connect to {target} (not allowed by its rules)"
        ),
        Error::HostUnreachable | Error::NetworkUnreachable => format!(
            "the SOCKS5 proxy {proxy} could not reach {target} (host unreachable through the proxy): check the host and port"
        ),
        Error::ConnectionRefused => format!(
            "{target} refused the SOCKS5 proxy {proxy}'s connection: is the broker running, and is -p right?"
        ),
        Error::AddressTypeNotSupported if matches!(proxy.kind, ProxyKind::Socks5 { remote_dns: true }) => format!(
            "the SOCKS5 proxy {proxy} does not take host names: use socks5:// to resolve {host} here"
        ),
        Error::Io(io) => format!(
            "the SOCKS5 proxy {proxy} broke off the handshake ({io}): is it a SOCKS5 proxy?"
        ),
        Error::InvalidResponseVersion
        | Error::UnknownAuthMethod
        | Error::InvalidReservedByte
        | Error::UnknownAddressType => format!(
            "{proxy} did not answer as a SOCKS5 proxy ({e}): check --proxy (or ALL_PROXY)"
        ),
        other => format!(
            "the SOCKS5 proxy {proxy} could not connect to {target}: {}",
            other.to_string().to_lowercase()
        ),
    };
    io::Error::other(why)
}
