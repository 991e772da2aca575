//! Settings → what rumqttc needs to open the connection: the broker address (a URL for
//! WebSocket; the socket's path for `--unix`), the transport with its TLS configuration, the
//! proxy (an HTTP proxy of the user's, or mqttcli's own relay), the upgrade headers.

use std::sync::Arc;

use anyhow::Result;
use rumqttc::{Proxy, ProxyAuth, ProxyType, TlsConfiguration, Transport};

use super::proxy::ProxyKind;
use super::relay::{self, Relay, Route, Upstream};
use super::{tls, Settings};

/// Who we talk to, for error messages.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `host:port`.
    pub endpoint: String,
    pub port: u16,
    pub tls: bool,
    /// We spoke MQTT 5: a broker that hangs up at once may only speak 3.1.1.
    pub mqtt5: bool,
    /// We spoke MQTT 3.1: a broker that hangs up at once may not speak it (amqtt, rumqttd).
    pub mqtt31: bool,
    /// A Unix-domain socket (`--unix`): no port to get wrong, no TLS to forget.
    pub unix: bool,
    pub client_cert: bool,
    pub proxy: Option<String>,
    /// The relay that carries this connection (relay.rs), if one does.
    pub relay: Option<Arc<Relay>>,
}

pub struct Wire {
    /// The host for `MqttOptions::new`: rumqttc wants the whole URL for WebSocket.
    pub broker: String,
    pub transport: Transport,
    pub proxy: Option<Proxy>,
    pub headers: Vec<(String, String)>,
    pub peer: Peer,
}

#[cfg(test)]
impl Peer {
    /// `broker:1883`, as the unit tests name it.
    pub fn for_tests(mqtt5: bool, mqtt31: bool, tls: bool) -> Peer {
        Peer {
            endpoint: "broker:1883".into(),
            port: 1883,
            tls,
            mqtt5,
            mqtt31,
            unix: false,
            client_cert: false,
            proxy: None,
            relay: None,
        }
    }
}

/// Who `s` talks to, for error messages (held.rs opens its connections without a `Wire`).
pub fn peer(s: &Settings) -> Peer {
    Peer {
        endpoint: match &s.unix {
            Some(path) => path.display().to_string(),
            None => format!("{}:{}", s.host, s.port),
        },
        port: s.port,
        tls: s.tls.is_some(),
        mqtt5: s.protocol == super::Protocol::V5,
        mqtt31: s.mqtt31,
        unix: s.unix.is_some(),
        client_cert: s.tls.as_ref().is_some_and(|t| t.identity.is_some()),
        proxy: s.proxy.as_ref().map(ToString::to_string),
        relay: None,
    }
}

/// Must be called on the runtime: a connection that needs the relay (relay.rs) starts it here.
pub fn wire(s: &Settings) -> Result<Wire> {
    let peer = peer(s);
    let (http_proxy, socks) = match &s.proxy {
        Some(p) if p.kind == ProxyKind::Http => (Some(p), None),
        Some(p) => (None, Some(p)),
        None => (None, None),
    };
    // rumqttc's own Unix transport, unless the relay must rewrite the CONNECT.
    #[cfg(unix)]
    if let (Some(path), false) = (&s.unix, s.mqtt31) {
        return Ok(Wire {
            broker: path.to_string_lossy().into_owned(),
            transport: Transport::Unix,
            proxy: None,
            headers: Vec::new(),
            peer,
        });
    }
    // rumqttc sends SNI for, and verifies, the host it dials: to use another name, dial that
    // name through the relay, which connects to -h (through the user's proxy, if any).
    let server_name = s
        .tls
        .as_ref()
        .and_then(|t| t.server_name.clone())
        .filter(|name| *name != s.host);
    // rumqttc cannot choose the address it connects from: the relay does (bench --ifaddr).
    let relayed = server_name.is_some() || s.mqtt31 || s.source.is_some();
    let route = match (&s.unix, socks, http_proxy) {
        (Some(path), _, _) => Some(Route::Unix(path.clone())),
        (None, Some(p), _) => Some(Route::Socks5(p.clone())),
        (None, None, Some(p)) if relayed => Some(Route::Http(p.clone())),
        (None, None, None) if relayed => Some(Route::Direct),
        (None, None, _) => None,
    };
    let relay = match route {
        Some(route) => Some(
            relay::start(Upstream {
                host: s.host.clone(),
                port: s.port,
                route,
                mqtt31: s.mqtt31,
                source: s.source,
            })
            .map_err(|e| anyhow::anyhow!("cannot start mqttcli's local relay: {e}"))?,
        ),
        None => None,
    };
    let tls_config = match (&s.tls, &server_name) {
        // The dialled name is the one to verify: the ordinary verifier does it.
        (Some(t), Some(_)) => Some(tls::client_config(&super::settings::TlsSettings {
            server_name: None,
            ..t.clone()
        })?),
        (Some(t), None) => Some(tls::client_config(t)?),
        (None, _) => None,
    };
    let dialled = server_name.clone().unwrap_or_else(|| s.host.clone());
    let host = if dialled.contains(':') {
        format!("[{dialled}]")
    } else {
        dialled.clone()
    };
    let (broker, transport) = match (&s.websocket, tls_config) {
        (None, None) => (dialled.clone(), Transport::Tcp),
        (None, Some(cfg)) => (
            dialled.clone(),
            Transport::tls_with_config(TlsConfiguration::Rustls(cfg)),
        ),
        (Some(ws), None) => (format!("ws://{host}:{}{}", s.port, ws.path), Transport::Ws),
        (Some(ws), Some(cfg)) => (
            format!("wss://{host}:{}{}", s.port, ws.path),
            Transport::wss_with_config(TlsConfiguration::Rustls(cfg)),
        ),
    };
    let through_relay = relay.as_ref().map(|r| Proxy {
        ty: ProxyType::Http,
        auth: ProxyAuth::None,
        addr: "127.0.0.1".to_string(),
        port: r.port,
    });
    let proxy = through_relay.or_else(|| {
        http_proxy.map(|p| Proxy {
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
        })
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
        peer: Peer { relay, ..peer },
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
