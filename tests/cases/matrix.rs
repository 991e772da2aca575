//! The broker matrix: one tier of cases run against every broker this machine can run
//! (tests/common/brokers.rs), each version it speaks. A test is `matrix::BROKER_VERSION::CASE`,
//! so a failure names both. Where a broker cannot pass a case, the case stays, ignored with
//! the reason (the README's "Broker notes" say more); where a broker's installation is missing,
//! its cases are ignored saying so, unless CI's `MQTTCLI_REQUIRE_BROKERS=1` asks for it (build.rs).

use std::process::Command;

use serde_json::Value;

use super::rr::{assert_request, Answer, Responder};
use crate::common::brokers::{Kind, MatrixBroker};
use crate::common::{
    mqttcli, programs, run, run_with_timeout, subscriber, unique_id, unique_topic, Live, Proto,
    DEADLINE,
};
use Proto::{V311, V5};

/// Payloads that a broker or client could mangle: spaces, multi-byte UTF-8, a lone `%`.
const LINES: &str = "first\nsecond, with spaces\nthird: ünïcode ✓ 100%\n";

fn qos0_round_trip(kind: Kind, proto: Proto) {
    round_trip(kind, proto, "0");
}

fn qos1_round_trip(kind: Kind, proto: Proto) {
    round_trip(kind, proto, "1");
}

fn qos2_round_trip(kind: Kind, proto: Proto) {
    round_trip(kind, proto, "2");
}

/// Three text messages over one connection, in order, then every byte value in one binary
/// message: what arrives is exactly what was sent.
fn round_trip(kind: Kind, proto: Proto, qos: &str) {
    let broker = MatrixBroker::start(kind);
    let topic = unique_topic() + "round-trip";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", qos, "-C", "3", "-W", "30"]),
    );
    let mut publish = broker.cmd("pub", proto);
    publish.args(["-t", &topic, "-q", qos, "-l"]);
    run_with_timeout(&mut publish, Some(LINES.into()), DEADLINE).assert_ok(b"");
    sub.finish().assert_ok(LINES.as_bytes());

    let binary: Vec<u8> = (0..=255u8).cycle().take(4 * 256).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, &binary).expect("write the payload");
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", qos, "-N", "-C", "1", "-W", "30"]),
    );
    run(broker
        .cmd("pub", proto)
        .args(["-t", &topic, "-q", qos, "-f"])
        .arg(&file))
    .assert_ok(b"");
    sub.finish().assert_ok(&binary);
}

/// A retained message reaches each later subscriber once, with the retain flag, at the lower
/// of the two QoS; an empty retained message clears it.
///
/// amqtt differs: it sends a connecting client, subscribed or not, the retained messages that
/// match any filter of the subscriptions it still holds, at QoS 0 (amqtt/broker.py,
/// `client_connected`). Whether it still holds the first subscriber's when the second
/// connects depends on timing, so the second may get the message twice (README, Broker notes).
fn retained(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let topic = unique_topic() + "retained";
    let publish = |args: &[&str]| {
        run(broker
            .cmd("pub", proto)
            .args(["-t", &topic, "-q", "1"])
            .args(args))
        .assert_ok(b"");
    };
    // --retained-only prints what is retained and ends at the first live message: had a
    // retained one been missing, doubled or left after clearing, the output would show it (a
    // broker sends retained messages right after its SUBACK, so before the live one).
    let retained_then_live = |expected: &str| {
        let sub = subscriber(
            broker
                .cmd("sub", proto)
                .args(["-t", &topic, "-q", "2", "--retained-only", "-W", "30"])
                .args(["-F", "{retain} {qos} {payload}"]),
        );
        publish(&["-m", "live"]);
        let mut out = sub.finish();
        if kind == Kind::Amqtt && out.stdout.starts_with("1 0 kept ✓\n".as_bytes()) {
            out.stdout.drain(.."1 0 kept ✓\n".len());
        }
        out.assert_ok(expected.as_bytes());
    };
    publish(&["-r", "-m", "kept ✓"]);
    // rumqttd sends retained messages at the subscriber's QoS too; amqtt at the lower one.
    let once = match kind {
        Kind::Rumqttd => "1 2 kept ✓\n",
        _ => "1 1 kept ✓\n",
    };
    retained_then_live(once);
    retained_then_live(once);
    publish(&["-r", "-n"]);
    retained_then_live("");
}

/// amqtt 0.12 and rumqttd 0.20 forward at the subscriber's QoS, not at the lower of the
/// publisher's and the subscriber's as MQTT says (3.1.1 section 3.8.4, 5.0 section 3.8.4).
fn forwards_at_the_subscribers_qos(kind: Kind) -> bool {
    matches!(kind, Kind::Amqtt | Kind::Rumqttd)
}

/// A subscriber gets each message at the lower of the publisher's and its own QoS (but see
/// `forwards_at_the_subscribers_qos`).
fn delivered_qos(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let topic = unique_topic() + "qos";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "2", "-W", "30"])
            .args(["-F", "{qos} {payload}"]),
    );
    for (qos, payload) in [("0", "sent at 0"), ("2", "sent at 2")] {
        run(broker
            .cmd("pub", proto)
            .args(["-t", &topic, "-q", qos, "-m", payload]))
        .assert_ok(b"");
    }
    let expected = if forwards_at_the_subscribers_qos(kind) {
        "1 sent at 0\n1 sent at 2\n"
    } else {
        "0 sent at 0\n1 sent at 2\n"
    };
    sub.finish().assert_ok(expected.as_bytes());
}

/// A persistent session keeps its subscriptions and queues QoS 1 messages while its client is
/// away; `unsub` removes one subscription from it and leaves the other.
fn persistent_session_unsub(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let t = unique_topic();
    let (gone, kept) = (format!("{t}gone"), format!("{t}kept"));
    let id = unique_id();
    let session = |filters: &[&str]| {
        let mut cmd = broker.cmd("sub", proto);
        cmd.args(["-c", "-i", &id, "-q", "1"]);
        for f in filters {
            cmd.args(["-t", f]);
        }
        cmd
    };
    run(session(&[&gone, &kept]).args(["-E", "-W", "30"])).assert_ok(b"");
    run(broker.cmd("unsub", proto).args(["-i", &id, "-t", &gone])).assert_ok(b"");
    // Queued for the offline session only while it is subscribed: had `unsub` failed,
    // "unsubscribed" would arrive before "kept".
    for (topic, payload) in [(&gone, "unsubscribed"), (&kept, "kept")] {
        run(broker
            .cmd("pub", proto)
            .args(["-t", topic, "-q", "1", "-m", payload]))
        .assert_ok(b"");
    }
    run(session(&[&kept]).args(["-v", "-C", "1", "-W", "30"]))
        .assert_ok(format!("{kept} kept\n").as_bytes());
}

/// rumqttd 0.20 answers no UNSUBSCRIBE of a subscription restored from a persistent session:
/// `unsub -W` gives up with exit 6 and says so, instead of waiting for ever.
fn restored_unsub_times_out(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let t = unique_topic();
    let id = unique_id();
    run(broker
        .cmd("sub", proto)
        .args(["-c", "-i", &id, "-q", "1", "-t", &t, "-E", "-W", "30"]))
    .assert_ok(b"");
    run(broker
        .cmd("unsub", proto)
        .args(["-i", &id, "-t", &t, "-W", "2s"]))
    .assert_exact_error(
        6,
        &format!(
            "mqttcli: error: no UNSUBACK for '{t}' within -W 2s: the broker may not hold that \
             subscription for this session; raise -W if it is only slow"
        ),
    );
}

/// `mqttcli check` at QoS 2: every step passes.
fn check(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let out = run(broker.cmd("check", proto).args(["-q", "2", "--json"]));
    out.assert_code(0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("check --json prints JSON");
    assert_eq!(report["ok"], true, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["ok"] == true)
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "connect",
            "subscribe",
            "publish",
            "receive",
            "unsubscribe",
            "disconnect"
        ],
        "{report}"
    );
}

/// mosquitto_pub and mosquitto_sub, the reference clients, with mqttcli on the same broker:
/// each receives exactly what the other sent.
fn reference_peers(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let mosquitto_pub = programs::program("mosquitto_pub");
    // Installed with it (mosquitto-clients).
    let mosquitto_sub = mosquitto_pub.with_file_name("mosquitto_sub");
    let reference = |mut cmd: Command, topic: &str| {
        cmd.args(["-h", "127.0.0.1", "-p", &broker.port(proto).to_string()])
            .args(["-V", if proto == V5 { "mqttv5" } else { "mqttv311" }])
            .args(["-t", topic, "-q", "1"])
            .args(broker.login());
        cmd
    };
    let topic = unique_topic() + "reference";

    // -d prints "received SUBACK" on stdout, among the messages. Line-buffered,
    // or the SUBACK line would wait in mosquitto_sub's buffer until it exits.
    let mut stdbuf = Command::new("stdbuf");
    stdbuf.arg("-oL").arg(&mosquitto_sub);
    let mut sub = Live::spawn(reference(stdbuf, &topic).args(["-C", "1", "-d"]), false);
    sub.wait_for("mosquitto_sub's SUBACK", DEADLINE, |s| {
        s.lines().iter().any(|l| l.contains("received SUBACK"))
    });
    run(broker
        .cmd("pub", proto)
        .args(["-t", &topic, "-q", "1", "-m", "from mqttcli ✓"]))
    .assert_ok(b"");
    let out = sub.finish();
    out.assert_code(0);
    let messages: Vec<String> = out
        .stdout_str()
        .lines()
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed (mid"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        messages,
        ["from mqttcli ✓"],
        "mosquitto_sub's output (less its -d lines)\n{}",
        out.dump()
    );

    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(reference(Command::new(&mosquitto_pub), &topic).args(["-m", "from mosquitto_pub ✓"]))
        .assert_ok(b"");
    sub.finish().assert_ok("from mosquitto_pub ✓\n".as_bytes());
}

/// `mqttcli rr` (MQTT 5): a responder on the broker answers; rr prints the reply to its own
/// request and skips the decoys without its correlation data.
fn rr(kind: Kind, proto: Proto) {
    assert_eq!(proto, V5, "rr is MQTT 5 only");
    let broker = MatrixBroker::start(kind);
    let topic = unique_topic() + "service";
    let responder = Responder::start(broker.port(V5), &topic, Answer::DecoysThenReply);
    run(broker
        .cmd("rr", V5)
        .args(["-t", &topic, "-m", "ping", "-W", "30s"]))
    .assert_ok(b"reply to ping\n");
    assert_request(&responder.request(), b"ping");
}

/// The version a broker does not speak, the error it causes and the hint that error must give.
fn unspoken(kind: Kind) -> (&'static str, i32, &'static [&'static str]) {
    match kind {
        // Both close the connection without a CONNACK.
        Kind::Aedes => ("5", 3, &["closed the connection before CONNACK", "-V 311"]),
        Kind::Rumqttd => ("31", 3, &["closed the connection before CONNACK", "-V 311"]),
        // amqtt neither answers nor closes: the connect timeout ends the wait.
        Kind::Amqtt => ("5", 3, &["no answer", "-V 311"]),
        Kind::Mosquitto => unreachable!("Mosquitto speaks 3.1, 3.1.1 and 5"),
    }
}

/// `--connect-timeout`: amqtt's answer is the timeout; the others close at once, and it only
/// bounds a loaded machine's delay.
fn unspoken_timeout(kind: Kind) -> &'static str {
    match kind {
        Kind::Amqtt => "3s",
        _ => "30s",
    }
}

/// Connecting with a version the broker does not speak is one line that says to try another.
fn unspoken_version(kind: Kind, proto: Proto) {
    let broker = MatrixBroker::start(kind);
    let (version, code, keywords) = unspoken(kind);
    let topic = unique_topic() + "unspoken";
    let out = run(mqttcli()
        .args([
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port(proto).to_string(),
        ])
        .args([
            "-V",
            version,
            "--connect-timeout",
            unspoken_timeout(kind),
            "-t",
            &topic,
            "-m",
            "x",
        ])
        .args(broker.login()));
    out.assert_error(code, keywords);
}

/// `matrix!(MODULE, KIND, PROTO, MISSING, "why ignored if so", [CASE, …])`: a module of tests,
/// one per case, each calling `CASE(KIND, PROTO)`. MISSING is a cfg that holds when the
/// broker's installation is missing (build.rs), `any()` for one that is always there. A case
/// is `NAME`, `NAME + CFG` (also ignored where CFG holds: a reference client is missing) or
/// `NAME = "why this broker cannot pass it"`.
macro_rules! matrix {
    ($module:ident, $kind:expr, $proto:expr, $missing:meta, $why_missing:literal,
     [$($case:ident $(+ $also:meta)? $(= $skip:literal)?),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $( matrix!(@case $case, $kind, $proto, $missing, $why_missing,
                       [$($also)?] $(, $skip)?); )*
        }
    };
    (@case $case:ident, $kind:expr, $proto:expr, $missing:meta, $why_missing:literal,
     [$($also:meta)?]) => {
        #[test]
        #[cfg_attr($missing, ignore = $why_missing)]
        $(#[cfg_attr(all(not($missing), $also),
                     ignore = "needs mosquitto_pub and mosquitto_sub (apt install mosquitto-clients)")])?
        fn $case() {
            super::$case($kind, $proto);
        }
    };
    (@case $case:ident, $kind:expr, $proto:expr, $missing:meta, $why_missing:literal,
     [$($also:meta)?], $skip:literal) => {
        #[test]
        #[ignore = $skip]
        fn $case() {
            super::$case($kind, $proto);
        }
    };
}

matrix!(
    mosquitto_v311,
    Kind::Mosquitto,
    V311,
    no_mosquitto,
    "needs Mosquitto (apt install mosquitto)",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub,
        check,
        reference_peers + no_mosquitto_pub,
        unspoken_version = "Mosquitto speaks MQTT 3.1, 3.1.1 and 5: there is no version to refuse",
    ]
);

matrix!(
    mosquitto_v5,
    Kind::Mosquitto,
    V5,
    no_mosquitto,
    "needs Mosquitto (apt install mosquitto)",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub,
        check,
        reference_peers + no_mosquitto_pub,
        rr,
    ]
);

matrix!(
    aedes_v311,
    Kind::Aedes,
    V311,
    no_aedes,
    "needs Aedes in .brokers/aedes (bash .ci/run installs it)",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub,
        check,
        reference_peers + no_mosquitto_pub,
        unspoken_version,
    ]
);

matrix!(
    amqtt_v311,
    Kind::Amqtt,
    V311,
    no_amqtt,
    "needs amqtt in .brokers/amqtt (bash .ci/run installs it)",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub,
        check,
        reference_peers + no_mosquitto_pub,
        unspoken_version,
    ]
);

matrix!(
    rumqttd_v311,
    Kind::Rumqttd,
    V311,
    any(),
    "",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub = "rumqttd 0.20 sends no UNSUBACK for a subscription restored from a persistent session (README, Broker notes): restored_unsub_times_out instead",
        restored_unsub_times_out,
        check,
        reference_peers + no_mosquitto_pub,
        unspoken_version,
    ]
);

matrix!(
    rumqttd_v5,
    Kind::Rumqttd,
    V5,
    any(),
    "",
    [
        qos0_round_trip,
        qos1_round_trip,
        qos2_round_trip,
        retained,
        delivered_qos,
        persistent_session_unsub = "rumqttd 0.20 sends no UNSUBACK for a subscription restored from a persistent session (README, Broker notes): restored_unsub_times_out instead",
        restored_unsub_times_out,
        check,
        reference_peers + no_mosquitto_pub,
        rr,
    ]
);
