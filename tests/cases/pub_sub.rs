//! Messages from `pub` reach `sub`: QoS levels, protocol versions, filters, retained messages,
//! the ways a subscriber ends, payload sources and sizes, volume.

use std::time::{Duration, Instant};

use crate::common::{publish, run, run_with_timeout, subscriber, unique_topic, Broker, Proto};
use Proto::{V311, V5};

fn round_trip(proto: Proto, qos: &str) {
    let broker = Broker::start();
    let topic = unique_topic() + "rt";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", qos, "-C", "1", "-W", "30"]),
    );
    let msg = format!("hello at QoS {qos}");
    publish(&broker, proto, &topic, &["-q", qos, "-m", &msg]);
    sub.finish().assert_ok(format!("{msg}\n").as_bytes());
}

#[test]
fn round_trip_v311_qos0() {
    round_trip(V311, "0");
}

#[test]
fn round_trip_v311_qos1() {
    round_trip(V311, "1");
}

#[test]
fn round_trip_v311_qos2() {
    round_trip(V311, "2");
}

#[test]
fn round_trip_v5_qos0() {
    round_trip(V5, "0");
}

#[test]
fn round_trip_v5_qos1() {
    round_trip(V5, "1");
}

#[test]
fn round_trip_v5_qos2() {
    round_trip(V5, "2");
}

#[test]
fn several_filters_with_wildcards() {
    let broker = Broker::start();
    let t = unique_topic();
    let sub = subscriber(broker.cmd("sub", V311).args([
        "-t",
        &format!("{t}a/+"),
        "-t",
        &format!("{t}b/#"),
        "-q",
        "1",
        "-v",
        "-C",
        "4",
        "-W",
        "30",
    ]));
    // The two that must not match go first: if they arrived, they would take -C's places.
    for (topic, msg) in [
        ("a/x/deep", "no: + is one level"),
        ("c/x", "no: other branch"),
        ("a/x", "1"),
        ("b", "2"),
        ("b/x/y", "3"),
        ("a/y", "4"),
    ] {
        publish(
            &broker,
            V311,
            &format!("{t}{topic}"),
            &["-q", "1", "-m", msg],
        );
    }
    let expected = format!("{t}a/x 1\n{t}b 2\n{t}b/x/y 3\n{t}a/y 4\n");
    sub.finish().assert_ok(expected.as_bytes());
}

#[test]
fn retained_message_reaches_a_late_subscriber() {
    let broker = Broker::start();
    let topic = unique_topic() + "kept";
    publish(&broker, V311, &topic, &["-r", "-q", "1", "-m", "kept"]);
    run(broker
        .cmd("sub", V311)
        .args(["-t", &topic, "-C", "1", "-W", "30"]))
    .assert_ok(b"kept\n");
}

#[test]
fn no_retained_hides_the_retained_message() {
    let broker = Broker::start();
    let topic = unique_topic() + "r";
    publish(&broker, V311, &topic, &["-r", "-q", "1", "-m", "old"]);
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-R", "-C", "1", "-W", "30"]),
    );
    // The broker sends the retained message before anything published after the SUBACK.
    publish(&broker, V311, &topic, &["-q", "1", "-m", "new"]);
    sub.finish().assert_ok(b"new\n");
}

#[test]
fn retained_only_prints_the_retained_messages() {
    let broker = Broker::start();
    let t = unique_topic();
    publish(
        &broker,
        V311,
        &format!("{t}a"),
        &["-r", "-q", "1", "-m", "old-a"],
    );
    publish(
        &broker,
        V311,
        &format!("{t}b"),
        &["-r", "-q", "1", "-m", "old-b"],
    );
    let out = run(broker.cmd("sub", V311).args([
        "-t",
        &format!("{t}#"),
        "--retained-only",
        "-v",
        "-C",
        "2",
        "-W",
        "30",
    ]));
    out.assert_code(0);
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort();
    assert_eq!(lines, [format!("{t}a old-a"), format!("{t}b old-b")]);
}

#[test]
fn retained_only_hides_live_messages() {
    let broker = Broker::start();
    let t = unique_topic();
    publish(
        &broker,
        V311,
        &format!("{t}a"),
        &["-r", "-q", "1", "-m", "old"],
    );
    let sub = subscriber(broker.cmd("sub", V311).args([
        "-t",
        &format!("{t}#"),
        "--retained-only",
        "-W",
        "30",
    ]));
    publish(
        &broker,
        V311,
        &format!("{t}live"),
        &["-q", "1", "-m", "live"],
    );
    let out = sub.finish();
    // As mosquitto_sub: the first live message ends the run, unprinted.
    out.assert_code(0);
    out.assert_stdout(b"old\n");
}

#[test]
fn one_qos_per_filter() {
    let broker = Broker::start();
    let t = unique_topic();
    let (low, high) = (format!("{t}low"), format!("{t}high"));
    let sub = subscriber(broker.cmd("sub", V5).args([
        "-t",
        &low,
        "-q",
        "0",
        "-t",
        &high,
        "-q",
        "2",
        "-F",
        "{topic} {qos}",
        "-C",
        "2",
        "-W",
        "30",
    ]));
    publish(&broker, V5, &low, &["-q", "2", "-m", "x"]);
    publish(&broker, V5, &high, &["-q", "2", "-m", "x"]);
    sub.finish()
        .assert_ok(format!("{low} 0\n{high} 2\n").as_bytes());
}

#[test]
fn count_stops_after_exactly_n_messages() {
    let broker = Broker::start();
    let topic = unique_topic() + "c";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-C", "2", "-W", "30"]),
    );
    run_with_timeout(
        broker
            .cmd("pub", V311)
            .args(["-t", &topic, "-q", "1", "-l"]),
        Some(b"1\n2\n3\n".to_vec()),
        crate::common::DEADLINE,
    )
    .assert_ok(b"");
    sub.finish().assert_ok(b"1\n2\n");
}

#[test]
fn timeout_without_messages_exits_6() {
    let broker = Broker::start();
    let topic = unique_topic() + "quiet";
    let start = Instant::now();
    run(broker.cmd("sub", V311).args(["-t", &topic, "-W", "1.5s"])).assert_error(6, &["time"]);
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn timeout_before_count_exits_6_after_printing_what_came() {
    let broker = Broker::start();
    let topic = unique_topic() + "partial";
    let sub = subscriber(
        broker
            .cmd("sub", V5)
            .args(["-t", &topic, "-C", "2", "-W", "5"]),
    );
    publish(&broker, V5, &topic, &["-m", "only one"]);
    let out = sub.finish();
    out.assert_code(6).assert_stdout(b"only one\n");
}

#[test]
fn exit_after_subscribe() {
    let broker = Broker::start();
    let topic = unique_topic() + "e";
    for proto in [V311, V5] {
        run(broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-E", "-W", "30"]))
        .assert_ok(b"");
    }
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

#[test]
fn binary_payload_from_file_is_byte_exact() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes.bin");
    std::fs::write(&file, all_bytes()).unwrap();
    for proto in [V311, V5] {
        let topic = unique_topic() + "bin";
        let sub = subscriber(
            broker
                .cmd("sub", proto)
                .args(["-t", &topic, "-C", "1", "-W", "30"]),
        );
        publish(
            &broker,
            proto,
            &topic,
            &["-q", "1", "-f", file.to_str().unwrap()],
        );
        sub.finish()
            .assert_ok(&[all_bytes(), b"\n".to_vec()].concat());
    }
}

#[test]
fn binary_payload_from_stdin_is_byte_exact() {
    let broker = Broker::start();
    // Twice the bytes, so a payload with newlines in it stays one message.
    let payload = [all_bytes(), all_bytes()].concat();
    let topic = unique_topic() + "stdin";
    let sub = subscriber(
        broker
            .cmd("sub", V5)
            .args(["-t", &topic, "-C", "1", "-W", "30"]),
    );
    run_with_timeout(
        broker.cmd("pub", V5).args(["-t", &topic, "-q", "2", "-s"]),
        Some(payload.clone()),
        crate::common::DEADLINE,
    )
    .assert_ok(b"");
    sub.finish().assert_ok(&[payload, b"\n".to_vec()].concat());
}

fn one_mebibyte(proto: Proto) {
    let broker = Broker::start();
    let payload: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &payload).unwrap();
    let topic = unique_topic() + "big";
    let sub = subscriber(
        broker
            .cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "60"]),
    );
    publish(
        &broker,
        proto,
        &topic,
        &["-q", "1", "-f", file.to_str().unwrap()],
    );
    sub.finish().assert_ok(&[payload, b"\n".to_vec()].concat());
}

#[test]
fn one_mebibyte_payload_v311() {
    one_mebibyte(V311);
}

#[test]
fn one_mebibyte_payload_v5() {
    one_mebibyte(V5);
}

#[test]
fn hundred_thousand_lines_at_qos1_arrive_in_order() {
    const N: usize = 100_000;
    let broker = Broker::start();
    let topic = unique_topic() + "lines";
    let lines: String = (0..N).map(|i| format!("line {i:06}\n")).collect();
    let sub = subscriber(broker.cmd("sub", V311).args([
        "-t",
        &topic,
        "-q",
        "1",
        "-C",
        &N.to_string(),
        "-W",
        "150",
    ]));
    run_with_timeout(
        broker
            .cmd("pub", V311)
            .args(["-t", &topic, "-q", "1", "-l"]),
        Some(lines.clone().into_bytes()),
        Duration::from_secs(150),
    )
    .assert_ok(b"");
    sub.finish().assert_ok(lines.as_bytes());
}

#[test]
fn two_hundred_publisher_processes_in_a_row() {
    let broker = Broker::start();
    let topic = unique_topic() + "many";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-C", "200", "-W", "150"]),
    );
    let mut expected = String::new();
    for i in 0..200 {
        let msg = format!("message {i}");
        publish(&broker, V311, &topic, &["-q", "1", "-m", &msg]);
        expected += &msg;
        expected += "\n";
    }
    sub.finish().assert_ok(expected.as_bytes());
}

#[test]
fn tutorial_loop_with_counter() {
    let broker = Broker::start();
    let topic = unique_topic() + "python/mqtt";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "5", "-W", "30"]),
    );
    let start = Instant::now();
    publish(
        &broker,
        V311,
        &topic,
        &[
            "-m",
            "messages: {n}",
            "--interval",
            "100ms",
            "--repeat",
            "5",
        ],
    );
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "5 messages 100ms apart took only {:?}",
        start.elapsed()
    );
    sub.finish()
        .assert_ok(b"messages: 0\nmessages: 1\nmessages: 2\nmessages: 3\nmessages: 4\n");
}

#[test]
fn repeat_without_interval() {
    let broker = Broker::start();
    let topic = unique_topic() + "rep";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-C", "3", "-W", "30"]),
    );
    publish(
        &broker,
        V311,
        &topic,
        &["-q", "1", "-m", "x{n}", "--repeat", "3"],
    );
    sub.finish().assert_ok(b"x0\nx1\nx2\n");
}

#[test]
fn stdin_lines_without_a_final_newline() {
    let broker = Broker::start();
    let topic = unique_topic() + "lines";
    let sub = subscriber(
        broker
            .cmd("sub", V5)
            .args(["-t", &topic, "-q", "2", "-C", "2", "-W", "30"]),
    );
    run_with_timeout(
        broker.cmd("pub", V5).args(["-t", &topic, "-q", "2", "-l"]),
        Some(b"first line\nlast line".to_vec()),
        crate::common::DEADLINE,
    )
    .assert_ok(b"");
    sub.finish().assert_ok(b"first line\nlast line\n");
}

#[test]
fn time_placeholders_and_literal() {
    let broker = Broker::start();
    let topic = unique_topic() + "ph";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-C", "2", "-W", "30"]),
    );
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let before = now_ms();
    publish(
        &broker,
        V311,
        &topic,
        &["-q", "1", "-m", "{unix} {unix_ms} {time}"],
    );
    let after = now_ms();
    publish(
        &broker,
        V311,
        &topic,
        &["-q", "1", "--literal", "-m", "{n} {unix}"],
    );
    let out = sub.finish();
    out.assert_code(0);
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields.len(), 3, "{:?}", lines[0]);
    let unix: u128 = fields[0].parse().expect("{unix} is a number");
    let unix_ms: u128 = fields[1].parse().expect("{unix_ms} is a number");
    assert!((before / 1000..=after / 1000).contains(&unix), "{unix}");
    assert!((before..=after).contains(&unix_ms), "{unix_ms}");
    // RFC 3339, e.g. 2025-11-26T04:52:00.123Z or …+01:00.
    let time = fields[2];
    assert!(
        time.len() >= 20 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b'T',
        "{{time}} gave {time:?}"
    );
    assert_eq!(lines[1], "{n} {unix}");
}

#[test]
fn url_gives_host_port_and_topic() {
    let broker = Broker::start();
    let topic = unique_topic() + "url";
    let url = format!("mqtt://127.0.0.1:{}/{topic}", broker.port(V311));
    let sub = subscriber(crate::common::mqttcli().args(["sub", "-L", &url, "-C", "1", "-W", "30"]));
    run(crate::common::mqttcli().args(["pub", "-L", &url, "-q", "1", "-m", "via url"]))
        .assert_ok(b"");
    sub.finish().assert_ok(b"via url\n");
}

#[test]
fn empty_message() {
    let broker = Broker::start();
    let topic = unique_topic() + "empty";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "1", "-W", "30"]),
    );
    publish(&broker, V311, &topic, &["-q", "1", "-n"]);
    sub.finish().assert_ok(b"\n");
}
