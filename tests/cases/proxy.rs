//! HTTP CONNECT proxies: `--proxy` for each transport, proxy credentials, a proxy that refuses,
//! and the proxy variables of the environment, which loopback hosts never use. Plain MQTT runs
//! against any broker (the rumqttd fallback too); TLS, ws and wss need Mosquitto.

use crate::common::certs::Pki;
use crate::common::proxy::{Proxy, Tunnel};
use crate::common::{at_localhost, mqttcli, run, unique_topic, Broker, Proto, Setup, Sub};
use Proto::{V311, V5};

/// A Mosquitto with a plain listener (`broker.port(..)`), and TLS (0), ws (1) and wss (2)
/// listeners whose certificate, for localhost and 127.0.0.1, is signed by the CA in
/// `pki/ca.pem`.
struct ProxiedBroker {
    broker: Broker,
    pki: Pki,
}

const TLS: usize = 0;
const WS: usize = 1;
const WSS: usize = 2;

impl ProxiedBroker {
    fn start(test: &str) -> Option<ProxiedBroker> {
        let pki = Pki::new();
        let server = pki.ca("ca").server("server", &["localhost", "127.0.0.1"]);
        let listeners = [
            server.mosquitto_tls(),
            "protocol websockets\n".to_string(),
            format!("protocol websockets\n{}", server.mosquitto_tls()),
        ];
        let broker = Broker::mosquitto(
            test,
            &Setup {
                anonymous: true,
                listeners: &listeners,
                ..Setup::default()
            },
        )?;
        Some(ProxiedBroker { broker, pki })
    }

    fn ca(&self) -> std::path::PathBuf {
        self.pki.dir().join("ca.pem")
    }
}

/// Publish through `proxy` with `transport_args` to `port`; a subscriber on the broker's plain
/// port must get the message.
#[track_caller]
fn publish_via(broker: &Broker, proxy: &Proxy, port: u16, proto: Proto, transport_args: &[&str]) {
    let topic = unique_topic() + "proxied";
    let sub = Sub::start(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(at_localhost("pub", port, proto)
        .args(["--proxy", &proxy.url()])
        .args(transport_args)
        .args(["-t", &topic, "-q", "1", "-m", "through the proxy"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"through the proxy\n");
}

/// The proxy got exactly one CONNECT, for `localhost:PORT`.
#[track_caller]
fn one_tunnel_to(proxy: &Proxy, port: u16) -> Tunnel {
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "expected one CONNECT: {tunnels:#?}");
    let tunnel = tunnels.into_iter().next().unwrap();
    let line = &tunnel.request_line;
    assert!(
        line.starts_with(&format!("CONNECT localhost:{port} HTTP/1.")),
        "the proxy saw {line:?}, expected 'CONNECT localhost:{port} HTTP/1.x'"
    );
    tunnel
}

#[test]
fn tcp_through_the_proxy() {
    let broker = Broker::start();
    for proto in [V311, V5] {
        let proxy = Proxy::start();
        let port = broker.port(proto);
        publish_via(&broker, &proxy, port, proto, &[]);
        let tunnel = one_tunnel_to(&proxy, port);
        // MQTT's CONNECT packet (type 1) is the first byte through the tunnel.
        assert_eq!(tunnel.inner.first(), Some(&0x10), "{tunnel:#?}");
    }
}

#[test]
fn tls_through_the_proxy() {
    let Some(b) = ProxiedBroker::start("tls_through_the_proxy") else {
        return;
    };
    let proxy = Proxy::start();
    let port = b.broker.listener_port(TLS);
    let ca = b.ca();
    publish_via(
        &b.broker,
        &proxy,
        port,
        V5,
        &["--cafile", ca.to_str().unwrap()],
    );
    let tunnel = one_tunnel_to(&proxy, port);
    // A TLS handshake record (ClientHello) is the first byte through the tunnel: the tunnel
    // carries TLS end to end.
    assert_eq!(tunnel.inner.first(), Some(&0x16), "{tunnel:#?}");
}

#[test]
fn ws_through_the_proxy() {
    let Some(b) = ProxiedBroker::start("ws_through_the_proxy") else {
        return;
    };
    let proxy = Proxy::start();
    let port = b.broker.listener_port(WS);
    publish_via(
        &b.broker,
        &proxy,
        port,
        V311,
        &[
            "--ws",
            "--ws-path",
            "/custom",
            "--header",
            "X-Through: the proxy",
        ],
    );
    let tunnel = one_tunnel_to(&proxy, port);
    let head = tunnel.inner_head_lines();
    assert_eq!(head[0], "GET /custom HTTP/1.1", "{tunnel:#?}");
    assert_eq!(
        tunnel.inner_header("X-Through").as_deref(),
        Some("the proxy"),
        "{tunnel:#?}"
    );
}

#[test]
fn wss_through_the_proxy() {
    let Some(b) = ProxiedBroker::start("wss_through_the_proxy") else {
        return;
    };
    let proxy = Proxy::start();
    let port = b.broker.listener_port(WSS);
    let url = format!("wss://localhost:{port}/custom");
    let ca = b.ca();
    publish_via(
        &b.broker,
        &proxy,
        port,
        V5,
        &["-L", &url, "--cafile", ca.to_str().unwrap()],
    );
    let tunnel = one_tunnel_to(&proxy, port);
    assert_eq!(tunnel.inner.first(), Some(&0x16), "{tunnel:#?}");
}

#[test]
fn sub_through_the_proxy() {
    let broker = Broker::start();
    let proxy = Proxy::start();
    let port = broker.port(V311);
    let topic = unique_topic() + "proxied-sub";
    let sub = Sub::start(at_localhost("sub", port, V311).args([
        "--proxy",
        &proxy.url(),
        "-t",
        &topic,
        "-C",
        "1",
        "-W",
        "30",
    ]));
    one_tunnel_to(&proxy, port);
    run(broker
        .cmd("pub", V311)
        .args(["-t", &topic, "-m", "to a proxied subscriber"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"to a proxied subscriber\n");
}

#[test]
fn proxy_credentials_go_in_proxy_authorization() {
    let broker = Broker::start();
    let proxy = Proxy::start();
    let port = broker.port(V311);
    let url = format!("http://alice:pr0xy-pw@127.0.0.1:{}", proxy.port());
    let out =
        run(at_localhost("pub", port, V311).args(["--proxy", &url, "-d", "-t", "t", "-m", "x"]));
    out.assert_code(0);
    assert!(
        !out.stderr.contains("pr0xy-pw"),
        "the proxy password appears on stderr:\n{}",
        out.stderr
    );
    let tunnel = one_tunnel_to(&proxy, port);
    // base64("alice:pr0xy-pw")
    assert_eq!(
        tunnel.header("Proxy-Authorization").as_deref(),
        Some("Basic YWxpY2U6cHIweHktcHc="),
        "{tunnel:#?}"
    );
}

#[test]
fn a_refusing_proxy_exits_3() {
    let broker = Broker::start();
    let proxy = Proxy::refusing();
    for (sub, args) in [("pub", &["-m", "x"][..]), ("sub", &["-W", "30"])] {
        run(at_localhost(sub, broker.port(V311), V311)
            .args(["--proxy", &proxy.url(), "-t", "t"])
            .args(args))
        .assert_error(3, &["proxy", "403"]);
    }
}

#[test]
fn environment_proxies_are_not_used_for_loopback_hosts() {
    let broker = Broker::start();
    // Were it used, this one would make the run fail.
    let proxy = Proxy::refusing();
    let port = broker.port(V311);
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        for host in ["localhost", "127.0.0.1"] {
            let topic = unique_topic() + "direct";
            let sub = Sub::start(
                broker
                    .cmd("sub", V311)
                    .args(["-t", &topic, "-C", "1", "-W", "30"]),
            );
            run(mqttcli()
                .args(["pub", "-h", host, "-p", &port.to_string()])
                .args(["-t", &topic, "-m", "direct"])
                .env(var, proxy.url()))
            .assert_ok(b"");
            sub.finish().assert_ok(b"direct\n");
        }
    }
    assert_eq!(
        proxy.connections(),
        0,
        "a loopback host went through an environment proxy: {:#?}",
        proxy.tunnels()
    );
}

#[test]
fn explicit_proxy_wins_over_the_environment_even_for_loopback() {
    let broker = Broker::start();
    let from_env = Proxy::refusing();
    let explicit = Proxy::start();
    let port = broker.port(V311);
    let topic = unique_topic() + "explicit";
    let sub = Sub::start(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "1", "-W", "30"]),
    );
    run(at_localhost("pub", port, V311)
        .args(["--proxy", &explicit.url(), "-t", &topic, "-m", "explicit"])
        .env("HTTPS_PROXY", from_env.url())
        .env("ALL_PROXY", from_env.url()))
    .assert_ok(b"");
    sub.finish().assert_ok(b"explicit\n");
    one_tunnel_to(&explicit, port);
    assert_eq!(from_env.connections(), 0, "{:#?}", from_env.tunnels());
}
