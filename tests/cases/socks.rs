//! SOCKS5 proxies: `--proxy socks5://` (mqttcli resolves the broker's name and asks for an
//! address) and `socks5h://` (the proxy gets the name), from ALL_PROXY too, for each transport,
//! with and without a user name and password; the proxy's refusals in words, exit 3, and the
//! password never on stderr. Plain MQTT runs against any broker; TLS, ws and wss need
//! Mosquitto.

use std::net::SocketAddr;

use crate::common::socks::{Request, Socks, Target};
use crate::common::transports::{ProxiedBroker, TLS, WS, WSS};
use crate::common::{connect, run, subscriber, unique_topic, Broker, Proto};
use Proto::{V311, V5};

/// A name that resolves nowhere: the test proxies map it to 127.0.0.1, so only a proxy that
/// was handed the name (socks5h) can reach the broker by it.
const REMOTE: &str = "broker.test";

/// Publish to `host:port` with `args` (the proxy and the transport); a subscriber on the
/// broker's plain port must get the message.
#[track_caller]
fn publish_via(broker: &Broker, host: &str, port: u16, proto: Proto, args: &[&str]) {
    let topic = unique_topic() + "socks";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(connect("pub", host, port, proto).args(args).args([
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "through SOCKS5",
    ]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"through SOCKS5\n");
}

/// The proxy got one request, and it named `name:port`.
#[track_caller]
fn one_request_for_name(socks: &Socks, name: &str, port: u16) -> Request {
    let requests = socks.requests();
    assert_eq!(requests.len(), 1, "expected one request: {requests:#?}");
    assert_eq!(
        requests[0].target,
        Some(Target::Name(name.to_string(), port)),
        "{requests:#?}"
    );
    requests[0].clone()
}

#[test]
fn socks5h_hands_the_proxy_the_host_name() {
    let broker = Broker::start();
    for proto in [V311, V5] {
        let socks = Socks::start();
        socks.map_to_loopback(REMOTE);
        let port = broker.port(proto);
        publish_via(
            &broker,
            REMOTE,
            port,
            proto,
            &["--proxy", &socks.url("socks5h", "")],
        );
        let request = one_request_for_name(&socks, REMOTE, port);
        assert_eq!(request.offered, [0], "no credentials, no password method");
    }
}

#[test]
fn socks5_resolves_here_and_sends_an_address() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let socks = Socks::start();
    publish_via(
        &broker,
        "localhost",
        port,
        V311,
        &["--proxy", &socks.url("socks5", "")],
    );
    // localhost may resolve to ::1 first, where the broker does not listen: the proxy then
    // answers "refused" and the next address is tried. Every request carried an address.
    let requests = socks.requests();
    let targets: Vec<_> = requests.iter().filter_map(|r| r.target.clone()).collect();
    assert!(
        targets.iter().all(|t| matches!(t, Target::Addr(_))),
        "{requests:#?}"
    );
    let ipv4: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(targets.last(), Some(&Target::Addr(ipv4)), "{requests:#?}");
}

#[test]
fn all_proxy_may_name_a_socks5_proxy() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let socks = Socks::start();
    socks.map_to_loopback(REMOTE);
    let topic = unique_topic() + "all-proxy";
    let sub = subscriber(
        connect("sub", REMOTE, port, V5)
            .args(["-t", &topic, "-C", "1", "-W", "30"])
            .env("ALL_PROXY", socks.url("socks5h", "")),
    );
    one_request_for_name(&socks, REMOTE, port);
    run(broker
        .cmd("pub", V5)
        .args(["-t", &topic, "-m", "to a subscriber behind SOCKS5"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"to a subscriber behind SOCKS5\n");
}

#[test]
fn user_and_password_reach_the_proxy_and_never_stderr() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let socks = Socks::with_password("alice", "s0cks-pw");
    let url = socks.url("socks5h", "alice:s0cks-pw");
    let out =
        run(connect("pub", "localhost", port, V311)
            .args(["--proxy", &url, "-d", "-t", "t", "-m", "x"]));
    out.assert_code(0);
    assert!(
        !out.stderr.contains("s0cks-pw"),
        "the proxy password appears on stderr:\n{}",
        out.stderr
    );
    let request = one_request_for_name(&socks, "localhost", port);
    assert!(request.offered.contains(&2), "{request:#?}");
    assert_eq!(
        request.credentials,
        Some(("alice".to_string(), "s0cks-pw".to_string()))
    );
}

#[test]
fn a_wrong_password_is_exit_3_in_words_without_the_password() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let socks = Socks::with_password("alice", "right-pw");
    let url = socks.url("socks5h", "alice:wr0ng-pw");
    for (sub, args) in [("pub", &["-m", "x"][..]), ("sub", &["-W", "30"])] {
        let out = run(connect(sub, "localhost", port, V311)
            .args(["--proxy", &url, "-t", "t"])
            .args(args));
        out.assert_exact_error(
            3,
            &format!(
                "mqttcli: error: cannot connect to localhost:{port}: the SOCKS5 proxy {} refused \
                 the user name and password (authentication failed): check them in the proxy URL",
                socks.url("socks5h", "")
            ),
        );
        let debug = run(connect(sub, "localhost", port, V311)
            .args(["--proxy", &url, "-d", "-t", "t"])
            .args(args));
        debug.assert_code(3);
        assert!(
            !debug.stderr.contains("wr0ng-pw"),
            "the proxy password appears on stderr with -d:\n{}",
            debug.stderr
        );
    }
}

#[test]
fn a_proxy_that_wants_credentials_says_so() {
    let broker = Broker::start();
    let socks = Socks::with_password("alice", "pw");
    run(connect("pub", "localhost", broker.port(V5), V5).args([
        "--proxy",
        &socks.url("socks5", ""),
        "-t",
        "t",
        "-m",
        "x",
    ]))
    .assert_error(
        3,
        &[
            "SOCKS5 proxy",
            "wants authentication",
            "socks5://USER:PASS@",
        ],
    );
}

#[test]
fn refusals_and_unreachable_hosts_are_exit_3_in_words() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let refusing = Socks::refusing();
    run(connect("pub", "localhost", port, V311).args([
        "--proxy",
        &refusing.url("socks5h", ""),
        "-t",
        "t",
        "-m",
        "x",
    ]))
    .assert_error(3, &["refused to connect to localhost:", "not allowed"]);

    // The test proxy reaches no host outside the machine: "host unreachable".
    let socks = Socks::start();
    run(connect("pub", "elsewhere.test", 1883, V311).args([
        "--proxy",
        &socks.url("socks5h", ""),
        "-t",
        "t",
        "-m",
        "x",
    ]))
    .assert_exact_error(
        3,
        &format!(
            "mqttcli: error: cannot connect to elsewhere.test:1883: the SOCKS5 proxy {} could not \
             reach elsewhere.test:1883 (host unreachable through the proxy): check the host and port",
            socks.url("socks5h", "")
        ),
    );

    let closed = crate::common::broker::free_port();
    let url = format!("socks5h://127.0.0.1:{closed}");
    run(connect("pub", "localhost", port, V311).args(["--proxy", &url, "-t", "t", "-m", "x"]))
        .assert_exact_error(
            3,
            &format!(
                "mqttcli: error: cannot connect to localhost:{port}: cannot connect to the SOCKS5 \
                 proxy {url}: Connection refused (os error 111): check --proxy (or ALL_PROXY)"
            ),
        );
}

#[test]
fn bad_socks_urls_are_usage_errors() {
    let too_long = "p".repeat(256);
    for (url, keywords) in [
        (
            "socks4://127.0.0.1:1080",
            &["socks4:// proxies are not supported"][..],
        ),
        (
            &format!("socks5://u:{too_long}@127.0.0.1:1"),
            &["1 to 255 bytes"],
        ),
    ] {
        let out =
            run(connect("pub", "localhost", 1883, V311)
                .args(["--proxy", url, "-t", "t", "-m", "x"]));
        out.assert_error(2, keywords);
        assert!(!out.stderr.contains(&too_long), "{}", out.stderr);
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_ws_and_wss_through_socks5() {
    let b = ProxiedBroker::start();
    let ca = b.ca();
    let ca = ca.to_str().unwrap();
    let cases: [(usize, &[&str]); 3] = [
        (TLS, &["--cafile", ca]),
        (WS, &["--ws", "--ws-path", "/mqtt"]),
        (WSS, &["--ws", "--cafile", ca]),
    ];
    for (listener, transport) in cases {
        for scheme in ["socks5h", "socks5"] {
            let socks = Socks::with_password("bob", "tls-pw");
            let port = b.broker.listener_port(listener);
            let mut args = vec!["--proxy".to_string(), socks.url(scheme, "bob:tls-pw")];
            args.extend(transport.iter().map(|a| a.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // The certificate names localhost: TLS is verified end to end through the proxy.
            publish_via(&b.broker, "localhost", port, V5, &args);
            let requests = socks.requests();
            let last = requests.last().and_then(|r| r.target.clone());
            let expected = if scheme == "socks5h" {
                Target::Name("localhost".into(), port)
            } else {
                Target::Addr(([127, 0, 0, 1], port).into())
            };
            assert_eq!(
                last,
                Some(expected),
                "{scheme}, listener {listener}: {requests:#?}"
            );
        }
    }
}
