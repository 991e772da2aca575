//! A Mosquitto with a listener for each transport, for the tests that run every transport
//! through a proxy (HTTP CONNECT in cases/proxy.rs, SOCKS5 in cases/socks.rs), and what a
//! proxied connection is checked with.

use super::certs::Pki;
use super::proxy::{Proxy, Tunnel};
use super::{Broker, Setup};

/// The one CONNECT request `proxy` got, which asked for `target` (`host:port`).
#[track_caller]
pub fn one_tunnel_to(proxy: &Proxy, target: &str) -> Tunnel {
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "expected one CONNECT: {tunnels:#?}");
    assert_eq!(tunnels[0].target(), target, "{tunnels:#?}");
    tunnels.into_iter().next().unwrap()
}

/// A Mosquitto with a plain listener (`broker.port(..)`), and TLS (0), ws (1) and wss (2)
/// listeners whose certificate, for localhost and 127.0.0.1, is signed by the CA in
/// `pki/ca.pem`.
pub struct ProxiedBroker {
    pub broker: Broker,
    pki: Pki,
}

pub const TLS: usize = 0;
pub const WS: usize = 1;
pub const WSS: usize = 2;

impl ProxiedBroker {
    pub fn start() -> ProxiedBroker {
        ProxiedBroker::start_with(&[])
    }

    /// As `start`, with `extra` lines in mosquitto.conf (e.g. `log_type all`).
    pub fn start_with(extra: &[&str]) -> ProxiedBroker {
        let pki = Pki::new();
        let server = pki.ca("ca").server("server", &["localhost", "127.0.0.1"]);
        let listeners = [
            server.mosquitto_tls(),
            "protocol websockets\n".to_string(),
            format!("protocol websockets\n{}", server.mosquitto_tls()),
        ];
        let broker = Broker::mosquitto(&Setup {
            anonymous: true,
            listeners: &listeners,
            extra,
            ..Setup::default()
        });
        ProxiedBroker { broker, pki }
    }

    pub fn ca(&self) -> std::path::PathBuf {
        self.pki.dir().join("ca.pem")
    }
}
