//! The relay's way to the broker through an HTTP CONNECT proxy of the user's, for the
//! connections the relay carries (`--tls-server-name`, `-V 31`): rumqttc's own proxy client
//! only tunnels to the host it dials, which for those is not the broker's address.

use std::io;
use std::net::IpAddr;

use base64::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connection::proxy::ProxySettings;

/// A TCP stream to `host:port` through the HTTP proxy `proxy`. Failures are in the words
/// rumqttc's proxy errors get (errors.rs), never with the credentials.
pub async fn connect(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let mut stream = super::tcp(&proxy.host, proxy.port, source)
        .await
        .map_err(|e| {
            io::Error::other(format!(
                "cannot connect to the proxy {proxy}: {e}: check --proxy (or HTTPS_PROXY / ALL_PROXY)"
            ))
        })?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = &proxy.auth {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", pass.expose()));
        request += &format!("Proxy-Authorization: Basic {token}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).await?;
    let head = super::read_head(&mut stream).await?.unwrap_or_default();
    let status_line = String::from_utf8_lossy(&head);
    let status = status_line.split(' ').nth(1).unwrap_or("");
    if status.len() == 3 && status.starts_with('2') {
        return Ok(stream);
    }
    Err(io::Error::other(if status.len() == 3 {
        format!(
            "the proxy {proxy} refused to open a tunnel to {authority} (HTTP {status}): check the proxy's rules and credentials"
        )
    } else {
        format!("the proxy {proxy} did not answer as an HTTP proxy: check --proxy")
    }))
}
