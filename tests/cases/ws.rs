//! MQTT over WebSocket (ws) and WebSocket over TLS (wss) against Mosquitto's websockets
//! listeners: round trips on a path other than the default, TLS options on wss, and the path and
//! extra headers of the upgrade request (seen by the test proxy, which reads plain ws).

use std::process::Command;

use crate::common::certs::{Ca, Pki};
use crate::common::proxy::Proxy;
use crate::common::{connect, mqttcli, run, subscriber, unique_topic, Broker, Proto};
use Proto::{V311, V5};

/// A Mosquitto with a plain MQTT listener, a ws listener (`ws_port`) and a wss listener
/// (`wss_port`) whose certificate, for localhost and 127.0.0.1, is signed by `ca`.
struct WsBroker {
    broker: Broker,
    ca: Ca,
    pki: Pki,
}

impl WsBroker {
    fn start() -> WsBroker {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let server = ca.server("server", &["localhost", "127.0.0.1"]);
        let listeners = [
            "protocol websockets\n".to_string(),
            format!("protocol websockets\n{}", server.mosquitto_tls()),
        ];
        let broker = Broker::anonymous_with_listeners(&listeners);
        WsBroker { broker, ca, pki }
    }

    fn ws_port(&self) -> u16 {
        self.broker.listener_port(0)
    }

    fn wss_port(&self) -> u16 {
        self.broker.listener_port(1)
    }
}

fn ws_round_trip(proto: Proto) {
    let ws = WsBroker::start();
    let topic = unique_topic() + "ws";
    let sub = subscriber(connect("sub", "localhost", ws.ws_port(), proto).args([
        "--ws",
        "--ws-path",
        "/custom",
        "-t",
        &topic,
        "-q",
        "1",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    // For ws:// the URL's path is the WebSocket path, so the topic comes with -t.
    let url = format!("ws://localhost:{}/custom", ws.ws_port());
    run(mqttcli().args([
        "pub",
        "-V",
        proto.arg(),
        "-L",
        &url,
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "over ws",
    ]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"over ws\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn ws_round_trip_on_a_custom_path_v311() {
    ws_round_trip(V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn ws_round_trip_on_a_custom_path_v5() {
    ws_round_trip(V5);
}

fn wss_round_trip(proto: Proto) {
    let ws = WsBroker::start();
    let topic = unique_topic() + "wss";
    let url = format!("wss://localhost:{}/custom", ws.wss_port());
    let sub = subscriber(
        mqttcli()
            .args(["sub", "-V", proto.arg(), "-L", &url, "--cafile"])
            .arg(&ws.ca.cert)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(connect("pub", "localhost", ws.wss_port(), proto)
        .args(["--ws", "--ws-path", "/custom", "--cafile"])
        .arg(&ws.ca.cert)
        .args(["-t", &topic, "-q", "1", "-m", "over wss"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"over wss\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wss_round_trip_on_a_custom_path_v311() {
    wss_round_trip(V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wss_round_trip_on_a_custom_path_v5() {
    wss_round_trip(V5);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wss_checks_the_certificate_as_mqtts_does() {
    let ws = WsBroker::start();
    let port = ws.wss_port();
    let other = ws.pki.ca("other-ca");
    let url = format!("wss://localhost:{port}/custom");
    let pub_wss = |extra: &[&str], ca: &std::path::Path| -> Command {
        let mut cmd = mqttcli();
        cmd.args(["pub", "-L", &url, "--cafile"])
            .arg(ca)
            .args(extra)
            .args(["-t", "t", "-m", "x"]);
        cmd
    };
    run(&mut pub_wss(&[], &other.cert)).assert_exact_error(
        7,
        &format!(
            "mqttcli: error: TLS handshake with localhost:{port} failed: the broker's \
             certificate is not signed by a trusted CA: pass the broker's CA with --cafile FILE"
        ),
    );
    // --insecure applies to wss too.
    let out = run(&mut pub_wss(&["--insecure"], &other.cert));
    out.assert_code(0).assert_stdout(b"");
    assert!(
        out.stderr.contains("mqttcli: warning: --insecure: "),
        "no --insecure warning:\n{}",
        out.stderr
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn upgrade_request_carries_the_path_and_the_extra_headers() {
    let ws = WsBroker::start();
    let proxy = Proxy::start();
    let topic = unique_topic() + "headers";
    let sub = subscriber(
        ws.broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "2", "-W", "30"]),
    );
    // The default path, then a custom one with two extra headers.
    for (args, msg) in [
        (&[][..], "default path"),
        (
            &[
                "--ws-path",
                "/custom",
                "--header",
                "X-Mqttcli-Test: hello there",
                "--header",
                "Authorization: Bearer t0ken",
            ][..],
            "custom path",
        ),
    ] {
        run(connect("pub", "localhost", ws.ws_port(), V311)
            .args(["--ws", "--proxy", &proxy.url()])
            .args(args)
            .args(["-t", &topic, "-m", msg]))
        .assert_ok(b"");
    }
    sub.finish().assert_ok(b"default path\ncustom path\n");

    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 2, "one tunnel per publisher: {tunnels:#?}");
    let lines: Vec<Vec<String>> = tunnels.iter().map(|t| t.inner_head_lines()).collect();
    assert_eq!(lines[0][0], "GET /mqtt HTTP/1.1", "{tunnels:#?}");
    assert_eq!(lines[1][0], "GET /custom HTTP/1.1", "{tunnels:#?}");
    assert_eq!(
        tunnels[1].inner_header("X-Mqttcli-Test").as_deref(),
        Some("hello there"),
        "{tunnels:#?}"
    );
    assert_eq!(
        tunnels[1].inner_header("Authorization").as_deref(),
        Some("Bearer t0ken"),
        "{tunnels:#?}"
    );
    assert_eq!(
        tunnels[0].inner_header("X-Mqttcli-Test"),
        None,
        "{tunnels:#?}"
    );
    // The MQTT subprotocol is still asked for beside the extra headers.
    assert_eq!(
        tunnels[1].inner_header("Sec-WebSocket-Protocol").as_deref(),
        Some("mqtt"),
        "{tunnels:#?}"
    );
}
