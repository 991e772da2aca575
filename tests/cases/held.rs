//! `bench conn`'s held connections (`connection::Held`, not rumqttc sessions): the broker sees
//! the CONNECT a Session sends (a scripted broker compares the bytes with `mqttcli pub`'s), they
//! are kept alive with pings as rumqttc keeps them (Mosquitto drops them otherwise), each step
//! of connecting is timed, and `--ifaddr` spreads connections over source addresses (Mosquitto's
//! log names each connection's address).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::certs::Pki;
use crate::common::fake::{Conn, FakeBroker, Packet};
use crate::common::{mqttcli, run, run_with_timeout, unique_id, Broker, Out, Proto, Setup};
use Proto::{V311, V5};

/// For runs to end; reached only when something is broken.
const WAIT: Duration = Duration::from_secs(60);

/// `mqttcli bench conn -h HOST -p PORT -V VERSION`.
fn conn(host: &str, port: u16, proto: Proto) -> Command {
    let mut cmd = mqttcli();
    cmd.args(["bench", "conn", "-h", host, "-p", &port.to_string()])
        .args(["-V", proto.arg(), "--json", "--quiet"]);
    cmd
}

#[track_caller]
fn summary(out: &Out) -> Value {
    serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| panic!("not one JSON summary ({e})\n{}", out.dump()))
}

/// The one error reason of a run.
#[track_caller]
fn only_error(s: &Value) -> String {
    let errors = s["errors"].as_object().expect("errors");
    assert_eq!(errors.len(), 1, "{s:#}");
    errors.keys().next().unwrap().clone()
}

/// The client's CONNECT; then CONNACK, and the rest of the connection until it ends.
fn connect_of(conn: &mut Conn, proto: Proto) -> Result<Packet, String> {
    let connect = conn.expect_connect(proto)?;
    conn.connack(proto, false)?;
    conn.until_disconnect()?;
    Ok(connect)
}

/// A held connection's CONNECT is byte for byte the one `mqttcli pub` sends through rumqttc,
/// for the same id, credentials, keepalive and will; and it carries them.
#[test]
fn a_held_connection_sends_a_sessions_connect() {
    for proto in [V311, V5] {
        let id = unique_id();
        let same = [
            "-i",
            &id,
            "-u",
            "held-user",
            "-P",
            "held-secret",
            "-k",
            "17",
            "--will-topic",
            "held/will",
            "--will-payload",
            "gone",
        ];
        let fake = FakeBroker::bind();
        let port = fake.port();
        let played = fake.serve_one(move |c| connect_of(c, proto));
        let out = run_with_timeout(
            conn("127.0.0.1", port, proto)
                .args(same)
                .args(["--duration", "300ms"]),
            None,
            WAIT,
        );
        let held = played.result(&out);
        out.assert_code(0);
        assert_eq!(summary(&out)["latency_ms"]["connack"]["count"], 1);

        let fake = FakeBroker::bind();
        let port = fake.port();
        let played = fake.serve_one(move |c| {
            let connect = c.expect_connect(proto)?;
            c.connack(proto, false)?;
            c.until_disconnect()?;
            Ok(connect)
        });
        let mut publish = mqttcli();
        publish
            .args(["pub", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-V", proto.arg(), "-t", "t", "-m", "m"])
            .args(same);
        let out = run_with_timeout(&mut publish, None, WAIT);
        let session = played.result(&out);
        out.assert_code(0);

        assert_eq!(
            held.0, session.0,
            "{proto:?}: held and Session CONNECTs differ"
        );
        let body = held.body();
        // "MQTT", level, flags: username, password, will, clean session.
        assert_eq!(body[7], 0b1100_0110, "{proto:?} flags");
        assert_eq!(
            u16::from_be_bytes([body[8], body[9]]),
            17,
            "{proto:?} keepalive"
        );
        for field in [
            id.as_bytes(),
            b"held-user",
            b"held-secret",
            b"held/will",
            b"gone",
        ] {
            assert!(
                body.windows(field.len()).any(|w| w == field),
                "{proto:?}: {} not in the CONNECT",
                String::from_utf8_lossy(field)
            );
        }
    }
}

/// Held for four seconds with a keepalive of one, the connections ping: Mosquitto would drop
/// them after one and a half seconds of silence.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn held_connections_ping_within_the_keepalive() {
    let mut broker = Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["log_type all"],
        ..Setup::default()
    });
    let prefix = format!("{}-", unique_id());
    let out = run(conn("127.0.0.1", broker.port(V311), V311).args([
        "-c",
        "2",
        "-k",
        "1",
        "--duration",
        "4s",
        "-I",
        &prefix,
    ]));
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!(
        (&s["connected"], &s["errors"]),
        (&2.into(), &Value::Object(Default::default())),
        "{s:#}"
    );
    let log = broker.log_text();
    for i in 0..2 {
        let pings = log
            .lines()
            .filter(|l| l.contains(&format!("Received PINGREQ from {prefix}{i}")))
            .count();
        assert!(
            pings >= 2,
            "{prefix}{i} sent {pings} PINGREQs in 4 s:\n{log}"
        );
    }
    assert!(!log.contains("exceeded timeout"), "{log}");
}

/// A broker that stops answering pings: the connection counts as lost when the next ping is
/// due, as a Session's does.
#[test]
fn a_broker_that_stops_answering_pings_loses_a_held_connection() {
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V311)?;
        c.connack(V311, false)?;
        // Read (and never answer) until the client goes.
        let mut pings = 0;
        while let Ok(p) = c.read() {
            pings += usize::from(p.kind() == 0xc0);
        }
        Ok(pings)
    });
    let out = run_with_timeout(
        conn("127.0.0.1", port, V311).args(["-k", "1", "--duration", "60s"]),
        None,
        WAIT,
    );
    assert_eq!(played.result(&out), 1);
    out.assert_code(3);
    let reason = only_error(&summary(&out));
    assert!(reason.contains("stopped answering pings"), "{reason}");
}

/// MQTT 5: the broker's Server Keep Alive replaces the client's own (60 s here): a ping comes
/// within the broker's one second.
#[test]
fn a_held_connection_adopts_the_server_keep_alive() {
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V5)?;
        // Server Keep Alive (0x13) = 1 s.
        c.connack_v5(false, &[0x13, 0, 1])?;
        let first = c.read()?;
        if first.kind() != 0xc0 {
            return Err(format!("expected PINGREQ, got {:02x?}", first.0));
        }
        c.write(&[0xd0, 0])?;
        c.until_disconnect()
    });
    let out = run_with_timeout(
        conn("127.0.0.1", port, V5).args(["-k", "60", "--duration", "3s"]),
        None,
        WAIT,
    );
    assert!(
        played.result(&out),
        "no DISCONNECT at the end:\n{}",
        out.dump()
    );
    out.assert_code(0);
}

/// MQTT 5: a DISCONNECT from the broker is counted with its reason, with its property length
/// or without (as MQTT 5 allows and Mosquitto sends it; rumqttc 0.25.1 could not read that form,
/// vendor/rumqttc/PATCHED.md).
#[test]
fn a_server_disconnect_is_counted_with_its_reason() {
    // Reason 0x8B: server shutting down.
    for disconnect in [&[0xe0, 2, 0x8b, 0][..], &[0xe0, 1, 0x8b]] {
        let fake = FakeBroker::bind();
        let port = fake.port();
        let played = fake.serve_one(move |c| {
            c.expect_connect(V5)?;
            c.connack(V5, false)?;
            c.write(disconnect)?;
            // Until the client goes: it must not be the close that ends the connection.
            while c.read().is_ok() {}
            Ok(())
        });
        let out = run_with_timeout(
            conn("127.0.0.1", port, V5).args(["--duration", "60s"]),
            None,
            WAIT,
        );
        played.result(&out);
        out.assert_code(3);
        let reason = only_error(&summary(&out));
        assert!(
            reason.ends_with("ended the connection: server shutting down (0x8b)"),
            "{disconnect:02x?}: {reason}"
        );
    }
}

/// Where each of `ids` connected from, by Mosquitto's log.
fn sources(broker: &mut Broker, ids: &[String]) -> Vec<String> {
    let log = broker.log_text();
    ids.iter()
        .map(|id| {
            let line = log
                .lines()
                .find(|l| l.ends_with(&format!(" as {id}")) || l.contains(&format!(" as {id} (")))
                .unwrap_or_else(|| panic!("{id} never connected:\n{log}"));
            let from = line.split(" from ").nth(1).expect("from");
            from.split(':').next().unwrap().to_string()
        })
        .collect()
}

/// `--ifaddr` deals the addresses out in turn: held connections bind them; `bench pub`'s
/// Sessions leave through the relay from them, and still deliver.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn ifaddr_spreads_connections_over_source_addresses() {
    let mut broker = Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["log_type all"],
        ..Setup::default()
    });
    let port = broker.port(V311);
    let prefix = format!("{}-", unique_id());
    let out = run(conn("127.0.0.1", port, V311).args([
        "-c",
        "4",
        "--ifaddr",
        "127.0.0.2,127.0.0.3",
        "--duration",
        "500ms",
        "-I",
        &prefix,
    ]));
    out.assert_code(0);
    assert_eq!(summary(&out)["connected"], 4);
    let ids: Vec<String> = (0..4).map(|i| format!("{prefix}{i}")).collect();
    assert_eq!(
        sources(&mut broker, &ids),
        ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
    );

    let prefix = format!("{}-", unique_id());
    let mut publish = mqttcli();
    publish
        .args(["bench", "pub", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "2", "-n", "5", "-q", "1", "--ifaddr", "127.0.0.4"])
        .args(["-I", &prefix, "--json", "--quiet"]);
    let out = run(&mut publish);
    out.assert_code(0);
    assert_eq!(summary(&out)["acked"], 10);
    let ids: Vec<String> = (0..2).map(|i| format!("{prefix}{i}")).collect();
    assert_eq!(sources(&mut broker, &ids), ["127.0.0.4", "127.0.0.4"]);
}

/// Mistakes with --ifaddr: not an address (usage, exit 2); beside --unix (usage); an address
/// this machine does not have, or of the other family, fails each client with the reason.
#[test]
fn ifaddr_mistakes_are_one_line_with_the_fix() {
    run(mqttcli().args(["bench", "conn", "--ifaddr", "eth0"])).assert_exact_error(
        2,
        "mqttcli: error: invalid value 'eth0' for '--ifaddr <ADDR,...>': 'eth0' is not an IP address: give this machine's addresses, e.g. 10.0.0.2,10.0.0.3",
    );
    run(mqttcli().args([
        "bench",
        "conn",
        "--ifaddr",
        "127.0.0.2",
        "--unix",
        "/tmp/x.sock",
    ]))
    .assert_error(2, &["--ifaddr", "--unix", "drop one"]);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for (source, words) in [
        ("192.0.2.1", "is it an address of this machine?"),
        ("::1", "has no IPv6 address to reach from --ifaddr ::1"),
    ] {
        let out = run(conn("127.0.0.1", port, V311).args(["-c", "2", "--ifaddr", source]));
        out.assert_code(3);
        let s = summary(&out);
        assert_eq!(s["connect_failed"], 2, "{s:#}");
        let reason = only_error(&s);
        assert!(reason.contains(words), "{reason}");
    }
}

/// The broker's name is looked up once for the run: one that does not resolve ends it at once,
/// with the line a single connection gives (exit 3), not one failure per client.
#[test]
fn a_name_that_does_not_resolve_ends_the_run_at_once() {
    run(conn("broker.test", 1883, V311).args(["-c", "1000"])).assert_exact_error(
        3,
        "mqttcli: error: cannot resolve host 'broker.test': check the name given with -h or -L",
    );
}

/// Over TLS each step is timed (TCP, TLS, CONNACK, beside the whole); a CA that did not sign
/// the broker's certificate fails every held connection the TLS way (exit 7).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_steps_are_timed_and_tls_failures_named() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let server = ca.server("server", &["localhost", "127.0.0.1"]);
    let listeners = [server.mosquitto_tls()];
    let broker = Broker::anonymous_with_listeners(&listeners);
    let port = broker.listener_port(0);
    let out = run(conn("localhost", port, V5)
        .args(["-c", "2", "--duration", "500ms", "--cafile"])
        .arg(&ca.cert));
    out.assert_code(0);
    let s = summary(&out);
    for step in ["connect", "tcp", "tls", "connack"] {
        assert_eq!(s["latency_ms"][step]["count"], 2, "{step}: {s:#}");
    }
    let plain = run(conn("127.0.0.1", broker.port(V311), V311).args(["--duration", "100ms"]));
    let s = summary(&plain);
    assert!(s["latency_ms"].get("tls").is_none(), "{s:#}");
    assert_eq!(s["latency_ms"]["tcp"]["count"], 1, "{s:#}");

    let other = pki.ca("other");
    let out = run(conn("localhost", port, V311)
        .args(["-c", "2", "--cafile"])
        .arg(&other.cert));
    out.assert_code(7);
    let s = summary(&out);
    assert_eq!(s["connect_failed"], 2, "{s:#}");
    let reason = only_error(&s);
    assert!(reason.contains("not signed by a trusted CA"), "{reason}");
}
