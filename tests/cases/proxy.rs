//! HTTP CONNECT proxies: `--proxy` for each transport, proxy credentials, a proxy that refuses,
//! and the proxy variables of the environment, which loopback hosts never use. Plain MQTT runs
//! against any broker (the rumqttd fallback too); TLS, ws and wss need Mosquitto.

use crate::common::proxy::{Proxy, Tunnel};
use crate::common::transports::{ProxiedBroker, TLS, WS, WSS};
use crate::common::{connect, mqttcli, run, subscriber, unique_topic, Broker, Proto};
use Proto::{V311, V5};

/// Publish through `proxy` with `transport_args` to `port`; a subscriber on the broker's plain
/// port must get the message.
#[track_caller]
fn publish_via(broker: &Broker, proxy: &Proxy, port: u16, proto: Proto, transport_args: &[&str]) {
    let topic = unique_topic() + "proxied";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(connect("pub", "localhost", port, proto)
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
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_through_the_proxy() {
    let b = ProxiedBroker::start();
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
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn ws_through_the_proxy() {
    let b = ProxiedBroker::start();
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
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wss_through_the_proxy() {
    let b = ProxiedBroker::start();
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
    let sub = subscriber(connect("sub", "localhost", port, V311).args([
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
        run(connect("pub", "localhost", port, V311)
            .args(["--proxy", &url, "-d", "-t", "t", "-m", "x"]));
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
        run(connect(sub, "localhost", broker.port(V311), V311)
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
            let sub = subscriber(
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
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "1", "-W", "30"]),
    );
    run(connect("pub", "localhost", port, V311)
        .args(["--proxy", &explicit.url(), "-t", &topic, "-m", "explicit"])
        .env("HTTPS_PROXY", from_env.url())
        .env("ALL_PROXY", from_env.url()))
    .assert_ok(b"");
    sub.finish().assert_ok(b"explicit\n");
    one_tunnel_to(&explicit, port);
    assert_eq!(from_env.connections(), 0, "{:#?}", from_env.tunnels());
}

/// A name that is not loopback (environment proxies are used for it) and does not resolve:
/// the test proxies map it to 127.0.0.1.
const REMOTE: &str = "broker.test";

/// `mqttcli SUBCOMMAND -h broker.test -p PORT -V VERSION`, environment cleaned. A generous
/// --connect-timeout, so that a slow resolver still gets to say the name does not resolve.
fn at_remote(subcommand: &str, port: u16, proto: Proto) -> std::process::Command {
    let mut cmd = connect(subcommand, REMOTE, port, proto);
    cmd.args(["--connect-timeout", "50s"]);
    cmd
}

/// A proxy that tunnels to the broker when asked for `broker.test`.
fn remote_proxy() -> Proxy {
    let proxy = Proxy::start();
    proxy.map_to_loopback(REMOTE);
    proxy
}

/// The proxy got exactly one CONNECT, for `broker.test:PORT`.
#[track_caller]
fn one_tunnel_to_remote(proxy: &Proxy, port: u16) {
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "expected one CONNECT: {tunnels:#?}");
    let line = &tunnels[0].request_line;
    assert!(
        line.starts_with(&format!("CONNECT {REMOTE}:{port} HTTP/1.")),
        "the proxy saw {line:?}, expected 'CONNECT {REMOTE}:{port} HTTP/1.x'"
    );
}

/// Publish to `broker.test` with `env` set; a subscriber on the broker gets the message.
#[track_caller]
fn publish_to_remote_with_env(broker: &Broker, proto: Proto, env: &[(&str, String)]) {
    let topic = unique_topic() + "env-proxy";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    let mut publisher = at_remote("pub", broker.port(proto), proto);
    publisher.args(["-t", &topic, "-q", "1", "-m", "via the environment"]);
    for (name, value) in env {
        publisher.env(name, value);
    }
    run(&mut publisher).assert_ok(b"");
    sub.finish().assert_ok(b"via the environment\n");
}

#[test]
fn environment_proxy_is_used_when_proxy_is_absent() {
    let broker = Broker::start();
    for proto in [V311, V5] {
        for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            let proxy = remote_proxy();
            publish_to_remote_with_env(&broker, proto, &[(var, proxy.url())]);
            one_tunnel_to_remote(&proxy, broker.port(proto));
        }
    }
}

#[test]
fn sub_uses_the_environment_proxy() {
    let broker = Broker::start();
    let proxy = remote_proxy();
    let port = broker.port(V5);
    let topic = unique_topic() + "env-proxied-sub";
    let sub = subscriber(
        at_remote("sub", port, V5)
            .args(["-t", &topic, "-C", "1", "-W", "30"])
            .env("HTTPS_PROXY", proxy.url()),
    );
    one_tunnel_to_remote(&proxy, port);
    run(broker
        .cmd("pub", V5)
        .args(["-t", &topic, "-m", "to a subscriber behind HTTPS_PROXY"]))
    .assert_ok(b"");
    sub.finish()
        .assert_ok(b"to a subscriber behind HTTPS_PROXY\n");
}

#[test]
fn https_proxy_wins_over_all_proxy() {
    let broker = Broker::start();
    let https = remote_proxy();
    let all = Proxy::refusing();
    publish_to_remote_with_env(
        &broker,
        V311,
        &[("HTTPS_PROXY", https.url()), ("ALL_PROXY", all.url())],
    );
    one_tunnel_to_remote(&https, broker.port(V311));
    assert_eq!(all.connections(), 0, "{:#?}", all.tunnels());
}

/// NO_PROXY entries that name broker.test send it direct, where it does not resolve: exit 3,
/// and the proxy is never contacted.
#[test]
fn no_proxy_bypasses_the_environment_proxy() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let cases = [
        ("NO_PROXY", "broker.test"),
        ("NO_PROXY", "other.example, broker.test"),
        ("NO_PROXY", ".test"),
        ("NO_PROXY", "test"),
        ("NO_PROXY", "*"),
        ("no_proxy", "BROKER.TEST"),
    ];
    for (var, value) in cases {
        for proxy_var in ["HTTPS_PROXY", "ALL_PROXY"] {
            let proxy = remote_proxy();
            let out = run(at_remote("pub", port, V311)
                .args(["-t", "t", "-m", "x"])
                .env(proxy_var, proxy.url())
                .env(var, value));
            out.assert_exact_error(
                3,
                "mqttcli: error: cannot resolve host 'broker.test': check the name given with -h or -L",
            );
            assert_eq!(
                proxy.connections(),
                0,
                "{proxy_var} was used despite {var}={value:?}: {:#?}",
                proxy.tunnels()
            );
        }
    }
}

/// NO_PROXY entries that do not name broker.test leave the proxy in use.
#[test]
fn no_proxy_for_other_hosts_keeps_the_proxy() {
    let broker = Broker::start();
    for no_proxy in [
        "other.example",
        "test.example, .broker.test.example",
        "roker.test",
    ] {
        let proxy = remote_proxy();
        publish_to_remote_with_env(
            &broker,
            V311,
            &[
                ("HTTPS_PROXY", proxy.url()),
                ("NO_PROXY", no_proxy.to_string()),
            ],
        );
        one_tunnel_to_remote(&proxy, broker.port(V311));
    }
}

/// The one line a proxy that answers CONNECT with 403 gets: exit 3.
#[test]
fn a_refusing_proxy_exact_message() {
    let broker = Broker::start();
    let proxy = Proxy::refusing();
    for proto in [V311, V5] {
        let port = broker.port(proto);
        let expected = |endpoint: &str| {
            format!(
                "mqttcli: error: the proxy {} refused to open a tunnel to {endpoint} (HTTP 403): \
                 check the proxy's rules and credentials",
                proxy.url()
            )
        };
        for (sub, args) in [("pub", &["-m", "x"][..]), ("sub", &["-W", "30"])] {
            run(connect(sub, "localhost", port, proto)
                .args(["--proxy", &proxy.url(), "-t", "t"])
                .args(args))
            .assert_exact_error(3, &expected(&format!("localhost:{port}")));
            run(at_remote(sub, port, proto)
                .args(["-t", "t"])
                .args(args)
                .env("HTTPS_PROXY", proxy.url()))
            .assert_exact_error(3, &expected(&format!("{REMOTE}:{port}")));
        }
    }
}

/// A proxy address where nothing listens: exit 3, one line naming the proxy.
#[test]
fn an_unreachable_proxy_exact_message() {
    let broker = Broker::start();
    let closed = crate::common::broker::free_port();
    let url = format!("http://127.0.0.1:{closed}");
    let expected = format!(
        "mqttcli: error: cannot connect to the proxy {url}: Connection refused (os error 111): \
         check --proxy (or HTTPS_PROXY / ALL_PROXY)"
    );
    for proto in [V311, V5] {
        let port = broker.port(proto);
        for (sub, args) in [("pub", &["-m", "x"][..]), ("sub", &["-W", "30"])] {
            run(connect(sub, "localhost", port, proto)
                .args(["--proxy", &url, "-t", "t"])
                .args(args))
            .assert_exact_error(3, &expected);
            run(at_remote(sub, port, proto)
                .args(["-t", "t"])
                .args(args)
                .env("ALL_PROXY", &url))
            .assert_exact_error(3, &expected);
        }
    }
}
