//! How `sub` prints: default, -v, -N, -F templates, --json, -T.

use serde_json::Value;

use crate::common::{programs, publish, run, subscriber, unique_topic, Broker, Proto};
use Proto::{V311, V5};

#[test]
fn verbose_prints_topic_space_payload() {
    let broker = Broker::start();
    let topic = unique_topic() + "v";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-v", "-C", "1", "-W", "30"]),
    );
    publish(&broker, V311, &topic, &["-m", "two words"]);
    sub.finish()
        .assert_ok(format!("{topic} two words\n").as_bytes());
}

#[test]
fn no_newline() {
    let broker = Broker::start();
    let topic = unique_topic() + "n";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-N", "-q", "1", "-C", "2", "-W", "30"]),
    );
    publish(&broker, V311, &topic, &["-q", "1", "-m", "a"]);
    publish(&broker, V311, &topic, &["-q", "1", "-m", "b"]);
    sub.finish().assert_ok(b"ab");
}

#[test]
fn format_template_from_the_tutorial() {
    let broker = Broker::start();
    let topic = unique_topic() + "python/mqtt";
    let sub = subscriber(broker.cmd("sub", V311).args([
        "-t",
        &topic,
        "-F",
        "Received `{payload}` from `{topic}` topic",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    publish(&broker, V311, &topic, &["-m", "messages: 0"]);
    sub.finish()
        .assert_ok(format!("Received `messages: 0` from `{topic}` topic\n").as_bytes());
}

#[test]
fn format_placeholders_and_braces() {
    let broker = Broker::start();
    let topic = unique_topic() + "f";
    let sub = subscriber(broker.cmd("sub", V5).args([
        "-t",
        &topic,
        "-q",
        "2",
        "-F",
        "{{{topic}}} len={len} hex={hex} qos={qos} [{payload}]",
        "-N",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    publish(&broker, V5, &topic, &["-q", "2", "-m", "Az\n"]);
    sub.finish()
        .assert_ok(format!("{{{topic}}} len=3 hex=417a0a qos=2 [Az\n]").as_bytes());
}

#[test]
fn unknown_placeholder_is_a_usage_error() {
    // Rejected before connecting: the port does not matter.
    run(crate::common::mqttcli().args([
        "sub",
        "-p",
        "1",
        "-t",
        "a",
        "-F",
        "{payload} {nope}",
        "-W",
        "5",
    ]))
    .assert_error(2, &["nope"]);
}

#[test]
fn filter_out_hides_matching_topics() {
    let broker = Broker::start();
    let t = unique_topic();
    let sub = subscriber(broker.cmd("sub", V311).args([
        "-t",
        &format!("{t}#"),
        "-T",
        &format!("{t}hidden/#"),
        "-q",
        "1",
        "-v",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    publish(
        &broker,
        V311,
        &format!("{t}hidden/x"),
        &["-q", "1", "-m", "no"],
    );
    publish(
        &broker,
        V311,
        &format!("{t}shown"),
        &["-q", "1", "-m", "yes"],
    );
    sub.finish().assert_ok(format!("{t}shown yes\n").as_bytes());
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    std::str::from_utf8(stdout)
        .expect("--json output is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn json(proto: Proto) -> Vec<Value> {
    let broker = Broker::start();
    let t = unique_topic();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes.bin");
    std::fs::write(&file, &bytes).unwrap();
    publish(
        &broker,
        proto,
        &format!("{t}r"),
        &["-r", "-q", "1", "-m", "kept"],
    );
    let sub = subscriber(broker.cmd("sub", proto).args([
        "-t",
        &format!("{t}#"),
        "-q",
        "1",
        "--json",
        "-C",
        "3",
        "-W",
        "30",
    ]));
    publish(
        &broker,
        proto,
        &format!("{t}text"),
        &["-q", "1", "-m", "héllo \"x\""],
    );
    // QoS 1 like the subscription: rumqttd delivers at the subscription's QoS even when the
    // publish had a lower one.
    publish(
        &broker,
        proto,
        &format!("{t}bin"),
        &["-q", "1", "-f", file.to_str().unwrap()],
    );
    let out = sub.finish();
    out.assert_code(0);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 3, "{}", out.stdout_str());
    let [kept, text, bin] = &lines[..] else {
        unreachable!()
    };
    assert_eq!(kept["topic"], format!("{t}r"));
    assert_eq!(kept["retain"], true);
    assert_eq!(kept["payload"], "kept");
    assert_eq!(text["topic"], format!("{t}text"));
    assert_eq!(text["qos"], 1);
    assert_eq!(text["retain"], false);
    assert_eq!(text["payload"], "héllo \"x\"");
    assert_eq!(text["encoding"], "utf8");
    assert!(text["time"].is_string(), "{text}");
    assert_eq!(bin["topic"], format!("{t}bin"));
    assert_eq!(bin["qos"], 1);
    assert_eq!(bin["encoding"], "base64");
    assert_eq!(bin["payload"], base64(&bytes));
    lines
}

#[test]
fn json_v311() {
    json(V311);
}

#[test]
fn json_v5_has_properties() {
    for line in json(V5) {
        assert!(line.get("properties").is_some(), "no properties: {line}");
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn json_shows_v5_properties_sent_by_mosquitto_pub() {
    let broker = Broker::anonymous_mosquitto();
    let mosquitto_pub = programs::program("mosquitto_pub");
    let topic = unique_topic() + "props";
    let sub = subscriber(
        broker
            .cmd("sub", V5)
            .args(["-t", &topic, "--json", "-C", "1", "-W", "30"]),
    );
    let mut cmd = std::process::Command::new(mosquitto_pub);
    cmd.args(["-h", "127.0.0.1", "-p", &broker.port(V5).to_string()])
        .args(["-V", "5", "-q", "1", "-t", &topic, "-m", "{}"])
        .args(["-D", "publish", "content-type", "application/json"])
        .args(["-D", "publish", "user-property", "origin", "sensor-7"]);
    run(&mut cmd).assert_ok(b"");
    let out = sub.finish();
    out.assert_code(0);
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    let props = lines[0]["properties"].to_string();
    for expected in ["application/json", "origin", "sensor-7"] {
        assert!(props.contains(expected), "{expected} not in {props}");
    }
}

#[test]
fn base64_helper() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}
