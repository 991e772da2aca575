//! Large payloads (64 KiB and more), which mqttcli writes from the payload's own buffer instead
//! of copying them into rumqttc's write buffer (`vendor/rumqttc`, `Network::write_publish`):
//! they arrive whole, with their MQTT 5 properties, over every transport and both protocol
//! versions, as `mosquitto_sub` (the reference subscriber) sees them. A payload that takes
//! longer than `--connect-timeout` to cross a slow link still arrives; one whose link stops
//! moving fails with the usual line.

use std::path::PathBuf;
use std::process::Stdio;

use crate::common::cutproxy::CutProxy;
use crate::common::live::Input;
use crate::common::transports::{ProxiedBroker, TLS, WS, WSS};
use crate::common::{at, connect, run, unique_topic, Broker, Live, Out, Proto};
use Proto::{V311, V5};

use super::mqtt5::{mosquitto, mosquitto_sub, WAIT};

/// `len` bytes that neither repeat nor compress: a lost or repeated piece shows.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `data` in a file of `dir`.
fn file(dir: &tempfile::TempDir, data: &[u8]) -> PathBuf {
    let path = dir.path().join("payload.bin");
    std::fs::write(&path, data).expect("write the payload file");
    path
}

/// Exit 0 and stdout is `expected`; a difference is told by its place, not by printing
/// megabytes.
#[track_caller]
fn assert_received(out: &Out, expected: &[u8]) {
    let got = &out.stdout;
    let first_difference = got.iter().zip(expected).position(|(a, b)| a != b);
    assert!(
        out.code == Some(0) && got.len() == expected.len() && first_difference.is_none(),
        "mosquitto_sub printed {} bytes, expected {}; first difference at {:?}; exit {:?}; stderr: {}",
        got.len(),
        expected.len(),
        first_difference,
        out.code,
        out.stderr
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_large_payload_arrives_whole_over_every_transport() {
    let mut b = ProxiedBroker::start_with(&["log_type all"]);
    let ca = b.ca();
    let ca = ca.to_str().unwrap();
    let broker = &mut b.broker;
    let dir = tempfile::tempdir().unwrap();
    // Past the 64 KiB from which a payload is written from its own buffer, and not a multiple
    // of the 16 KiB pieces it is written in.
    let data = payload((1 << 20) + 7);
    let path = file(&dir, &data);
    let transports: [(&str, u16, Vec<&str>); 4] = [
        ("tcp", broker.port(V5), vec![]),
        ("tls", broker.listener_port(TLS), vec!["--cafile", ca]),
        ("ws", broker.listener_port(WS), vec!["--ws"]),
        (
            "wss",
            broker.listener_port(WSS),
            vec!["--ws", "--cafile", ca],
        ),
    ];
    for (name, port, args) in &transports {
        for (proto, qos) in [(V311, "1"), (V5, "1"), (V311, "2"), (V5, "0")] {
            let topic = format!("{}{name}", unique_topic());
            let sub = mosquitto_sub(broker, &topic, "%P|%C|%l|%p", 1);
            let mut publish = connect("pub", "localhost", *port, proto);
            publish
                .args(args)
                .args(["-t", &topic, "-q", qos, "-f", path.to_str().unwrap()]);
            let mut expected = match proto {
                V5 => {
                    publish.args(["--user-property", "part=1", "--content-type", "x/bin"]);
                    format!("part:1|x/bin|{}|", data.len()).into_bytes()
                }
                _ => format!("||{}|", data.len()).into_bytes(),
            };
            expected.extend_from_slice(&data);
            expected.push(b'\n');
            run(&mut publish).assert_ok(b"");
            let out = sub.finish();
            eprintln!("{name}, MQTT {}, QoS {qos}: checked", proto.arg());
            assert_received(&out, &expected);
        }
    }
}

/// 8 MiB through a 2 MiB/s link take about 4 s: the client's socket buffer takes the first
/// megabytes at once, the rest waits on the link, well past the 1 s of `--connect-timeout`.
/// A write that moves is not a stall: the message arrives. (The whole packet under one
/// timeout, as rumqttc's own write had it, failed here.)
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_payload_slower_to_send_than_the_connect_timeout_arrives() {
    let mut broker = mosquitto(&[]);
    let link = CutProxy::throttled(broker.port(V311), 2 << 20);
    let dir = tempfile::tempdir().unwrap();
    let data = payload(8 << 20);
    let path = file(&dir, &data);
    for proto in [V311, V5] {
        let topic = unique_topic();
        let sub = mosquitto_sub(&mut broker, &topic, "%l", 1);
        run(at("pub", link.port(), proto)
            .args(["--connect-timeout", "1s", "-q", "1", "-t", &topic])
            .args(["-f", path.to_str().unwrap()]))
        .assert_ok(b"");
        sub.finish()
            .assert_ok(format!("{}\n", data.len()).as_bytes());
    }
}

/// A link that passes 1 KB a second: once the socket buffers are full, not one 16 KiB piece of
/// a large payload gets through within `--connect-timeout`, nor a burst of a stream's small
/// messages. `pub -f` gives up with the line that names the fix, exit 3; a stream (`-l`)
/// warns in the same words and reconnects. Under both versions: MQTT 5's writes had no
/// timeout at all and waited for good.
#[test]
fn a_stalled_write_fails_after_the_connect_timeout() {
    let broker = Broker::start();
    let link = CutProxy::throttled(broker.port(V311), 1000);
    let dir = tempfile::tempdir().unwrap();
    let path = file(&dir, &payload(8 << 20));
    let lines: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("{i:099}\n").into_bytes())
        .collect();
    let stalled = "writing to the socket timed out (raise --connect-timeout for slow links)";
    for proto in [V311, V5] {
        run(at("pub", link.port(), proto)
            .args(["--connect-timeout", "1s", "-q", "1", "-t", &unique_topic()])
            .args(["-f", path.to_str().unwrap()]))
        .assert_error(
            3,
            &[
                "0 of 1 messages acknowledged",
                "lost the connection to 127.0.0.1",
                stalled,
            ],
        );
        let mut stream = Live::spawn_with(
            at("pub", link.port(), proto).args([
                "--connect-timeout",
                "1s",
                "-q",
                "0",
                "-l",
                "-t",
                &unique_topic(),
            ]),
            Input::Bytes(lines.clone()),
            Stdio::piped(),
        );
        stream.wait_stderr(stalled, 1, WAIT);
    }
}
