//! `-V 31` / `-V mqttv31`: MQTT 3.1 (protocol name MQIsdp, level 3). Mosquitto's log shows the
//! protocol each client connected with: `p1` for 3.1, `p2` for 3.1.1.

use std::path::Path;

use crate::common::proxy::Proxy;
use crate::common::socks::Socks;
use crate::common::transports::one_tunnel_to;
use crate::common::{at, mqttcli, run, subscriber, unique_id, unique_topic, Broker, Proto, Setup};

/// A Mosquitto that logs every client's CONNECT, with a Unix socket in `dir` as well.
fn logging_broker(dir: &Path) -> Broker {
    let listener = format!("listener 0 {}", dir.join("mqtt.sock").display());
    Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["log_type all", &listener],
        ..Setup::default()
    })
}

/// The protocol Mosquitto logged for client `id`: `p1`, `p2` or `p5`.
#[track_caller]
fn logged_protocol(broker: &mut Broker, id: &str) -> String {
    let log = broker.log_text();
    let marker = format!(" as {id} (");
    let line = log
        .lines()
        .find(|l| l.contains("New client connected") && l.contains(&marker))
        .unwrap_or_else(|| panic!("no 'New client connected … as {id}' in the log:\n{log}"));
    let after = &line[line.find(&marker).unwrap() + marker.len()..];
    after.split(',').next().unwrap_or("").to_string()
}

/// `mqttcli SUBCOMMAND -h 127.0.0.1 -p PORT -V VERSION` with VERSION as spelled.
fn v31(broker: &Broker, subcommand: &str, spelling: &str) -> std::process::Command {
    let mut cmd = at(subcommand, broker.port(Proto::V311), Proto::V311);
    // The later -V wins: clap keeps the last of a flag given twice.
    cmd.args(["-V", spelling]);
    cmd
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_and_sub_speak_mqtt_3_1() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = logging_broker(dir.path());
    let topic = unique_topic() + "v31";
    let (sub_id, pub_id) = (unique_id(), unique_id());
    let sub = subscriber(v31(&broker, "sub", "mqttv31").args([
        "-i", &sub_id, "-t", &topic, "-q", "2", "-C", "3", "-W", "30",
    ]));
    for qos in ["0", "1", "2"] {
        run(v31(&broker, "pub", "31").args([
            "-i",
            &format!("{pub_id}{qos}"),
            "-t",
            &topic,
            "-q",
            qos,
            "-m",
            &format!("3.1 at QoS {qos}"),
        ]))
        .assert_ok(b"");
        assert_eq!(
            logged_protocol(&mut broker, &format!("{pub_id}{qos}")),
            "p1"
        );
    }
    sub.finish()
        .assert_ok(b"3.1 at QoS 0\n3.1 at QoS 1\n3.1 at QoS 2\n");
    assert_eq!(logged_protocol(&mut broker, &sub_id), "p1");
    // And 3.1.1 is still 3.1.1.
    let id = unique_id();
    run(broker
        .cmd("pub", Proto::V311)
        .args(["-i", &id, "-t", &topic, "-m", "x"]))
    .assert_ok(b"");
    assert_eq!(logged_protocol(&mut broker, &id), "p2");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mqtt_3_1_through_socks5_and_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = logging_broker(dir.path());
    let socks = Socks::start();
    let id = unique_id();
    run(mqttcli().args([
        "pub",
        "-h",
        "localhost",
        "-p",
        &broker.port(Proto::V311).to_string(),
        "-V",
        "31",
        "--proxy",
        &socks.url("socks5h", ""),
        "-i",
        &id,
        "-t",
        "t",
        "-m",
        "x",
    ]))
    .assert_ok(b"");
    assert_eq!(logged_protocol(&mut broker, &id), "p1");
    assert_eq!(socks.requests().len(), 1);

    let id = unique_id();
    run(mqttcli()
        .args(["pub", "-V", "31", "-i", &id, "-t", "t", "-m", "x", "--unix"])
        .arg(dir.path().join("mqtt.sock")))
    .assert_ok(b"");
    assert_eq!(logged_protocol(&mut broker, &id), "p1");
}

/// Through an HTTP proxy the relay goes through it too: the proxy sees the 3.1 CONNECT.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mqtt_3_1_through_an_http_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = logging_broker(dir.path());
    let proxy = Proxy::start();
    let id = unique_id();
    let port = broker.port(Proto::V311);
    run(v31(&broker, "pub", "31").args(["--proxy", &proxy.url(), "-i", &id, "-t", "t", "-m", "x"]))
        .assert_ok(b"");
    assert_eq!(logged_protocol(&mut broker, &id), "p1");
    let tunnels = [one_tunnel_to(&proxy, &format!("127.0.0.1:{port}"))];
    // CONNECT, its remaining length, then the protocol name 3.1 gives it.
    assert_eq!(&tunnels[0].inner[2..10], b"\x00\x06MQIsdp", "{tunnels:#?}");
}

/// 3.1 allows client ids of 23 characters: a longer one is sent (most brokers take it) with
/// one warning; the default random id fits.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn client_ids_over_23_characters_warn_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = logging_broker(dir.path());
    let long = format!("{}-and-more-than-23", unique_id());
    let out = run(v31(&broker, "pub", "31").args(["-i", &long, "-t", "t", "-m", "x"]));
    out.assert_ok(b"");
    assert_eq!(
        out.stderr,
        format!(
            "mqttcli: warning: the client id '{long}' is longer than MQTT 3.1's 23 characters: a \
             strict broker refuses it (CONNACK code 2); choose a shorter one with -i or -I\n"
        )
    );
    assert_eq!(logged_protocol(&mut broker, &long), "p1");

    let out = run(v31(&broker, "pub", "31").args(["-d", "-t", "t", "-m", "x"]));
    out.assert_ok(b"");
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let log = broker.log_text();
    let ids: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains("(p1,"))
        .filter_map(|l| l.split(" as ").nth(1)?.split(' ').next())
        .filter(|id| id.starts_with("mqttcli-"))
        .collect();
    assert_eq!(ids.len(), 1, "{log}");
    assert_eq!(ids[0].len(), 23, "{ids:?}");
}

#[test]
fn mqtt_3_1_over_tls_or_websocket_is_a_usage_error() {
    for transport in [&["--tls"][..], &["--ws"], &["-L", "wss://localhost/mqtt"]] {
        run(mqttcli()
            .args(["pub", "-V", "mqttv31", "-t", "t", "-m", "x"])
            .args(transport))
        .assert_error(2, &["-V 31", "not over TLS or WebSocket", "-V 311"]);
    }
    run(mqttcli().args(["pub", "-V", "3.2", "-t", "t", "-m", "x"])).assert_code(2);
}
