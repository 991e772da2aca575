//! Settings → what rumqttc needs to open the connection: the broker address (a URL for
//! WebSocket), the transport with its TLS configuration, the proxy, the upgrade headers.

use std::sync::Arc;

use anyhow::Result;
use rumqttc::{Proxy, ProxyAuth, ProxyType, TlsConfiguration, Transport};

use super::{tls, Settings};

/// Who we talk to, for error messages.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `host:port`.
    pub endpoint: String,
    pub port: u16,
    pub tls: bool,
    pub client_cert: bool,
    pub proxy: Option<String>,
}

pub struct Wire {
    /// The host for `MqttOptions::new`: rumqttc wants the whole URL for WebSocket.
    pub broker: String,
    pub transport: Transport,
    pub proxy: Option<Proxy>,
    pub headers: Vec<(String, String)>,
    pub peer: Peer,
}

pub fn wire(s: &Settings) -> Result<Wire> {
    let tls_config = s.tls.as_ref().map(tls::client_config).transpose()?;
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    let (broker, transport) = match (&s.websocket, tls_config) {
        (None, None) => (s.host.clone(), Transport::Tcp),
        (None, Some(cfg)) => (
            s.host.clone(),
            Transport::tls_with_config(TlsConfiguration::Rustls(cfg)),
        ),
        (Some(ws), None) => (format!("ws://{host}:{}{}", s.port, ws.path), Transport::Ws),
        (Some(ws), Some(cfg)) => (
            format!("wss://{host}:{}{}", s.port, ws.path),
            Transport::wss_with_config(TlsConfiguration::Rustls(cfg)),
        ),
    };
    let proxy = s.proxy.as_ref().map(|p| Proxy {
        ty: ProxyType::Http,
        auth: match &p.auth {
            Some((user, pass)) => ProxyAuth::Basic {
                username: user.clone(),
                password: pass.expose().to_string(),
            },
            None => ProxyAuth::None,
        },
        addr: p.host.clone(),
        port: p.port,
    });
    Ok(Wire {
        broker,
        transport,
        proxy,
        headers: s
            .websocket
            .as_ref()
            .map(|w| w.headers.clone())
            .unwrap_or_default(),
        peer: Peer {
            endpoint: format!("{}:{}", s.host, s.port),
            port: s.port,
            tls: s.tls.is_some(),
            client_cert: s.tls.as_ref().is_some_and(|t| t.identity.is_some()),
            proxy: s.proxy.as_ref().map(ToString::to_string),
        },
    })
}

type Request = http::Request<()>;

/// Adds the `--header`s to the WebSocket upgrade request. They were checked when parsed.
pub fn header_modifier(
    headers: Vec<(String, String)>,
) -> impl Fn(Request) -> std::future::Ready<Request> + Send + Sync + 'static {
    let headers = Arc::new(headers);
    move |mut request: Request| {
        for (name, value) in headers.iter() {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                request.headers_mut().append(name, value);
            }
        }
        std::future::ready(request)
    }
}
