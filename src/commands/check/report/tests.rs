//! The table and the JSON line, rendered from reports built by hand: every line of the table
//! and every JSON field as `check` prints them.

use super::*;
use crate::commands::check::Failed;
use crate::exit::fail;

const TOPIC: &str = "mqttcli/check/AbCd1234EfGh5678";
const HEADER: &str = "checking 127.0.0.1:1883 (tcp, MQTT 5.0) on topic mqttcli/check/AbCd1234EfGh5678 with 3 messages at QoS 1";

/// The step lines of `passed()`, and its round trip.
const PASSED: [&str; 6] = [
    "connect      ok        1.23 ms",
    "subscribe    ok        0.50 ms  granted QoS 1",
    "publish      ok        12.3 ms  3 acknowledged",
    "receive      ok        15.0 ms  3 of 3, payloads and order as sent",
    "unsubscribe  ok        0.25 ms",
    "disconnect   ok        0.10 ms",
];
const ROUND_TRIP: &str = "round trip   min 2.00 ms, median 4.00 ms, max 13.0 ms";

/// The text of a table of `lines`, each ended by a newline.
fn table(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn step(step: Step, ok: bool, micros: u64, detail: &str) -> StepResult {
    StepResult {
        step,
        ok,
        time: us(micros),
        detail: detail.to_string(),
    }
}

/// A report of 3 messages at QoS 1 over MQTT 5 after `steps`.
fn report(steps: Vec<StepResult>) -> Report {
    Report {
        broker: "127.0.0.1:1883".to_string(),
        transport: "tcp",
        protocol: "5.0",
        client_id: "mqttcli-check-7Qx".to_string(),
        topic: TOPIC.to_string(),
        qos: Qos::AtLeastOnce,
        count: 3,
        steps,
        latencies: Vec::new(),
        probe: None,
    }
}

/// Every step passed, and the messages came back after 4, 2 and 13 ms.
fn passed() -> Report {
    let mut r = report(vec![
        step(Step::Connect, true, 1_234, ""),
        step(Step::Subscribe, true, 500, "granted QoS 1"),
        step(Step::Publish, true, 12_340, "3 acknowledged"),
        step(
            Step::Receive,
            true,
            15_000,
            "3 of 3, payloads and order as sent",
        ),
        step(Step::Unsubscribe, true, 250, ""),
        step(Step::Disconnect, true, 100, ""),
    ]);
    r.latencies = vec![us(4_000), us(2_000), us(13_000)];
    r
}

fn failed_at(step: Step, error: anyhow::Error) -> Result<(), Stop> {
    Err(Stop::Failed(Failed { step, error }))
}

fn text(r: &Report, outcome: &Result<(), Stop>) -> String {
    let mut out = Vec::new();
    r.write_text(outcome, &mut out).expect("written to a Vec");
    String::from_utf8(out).expect("UTF-8")
}

/// The JSON line, parsed; it must be one line.
fn json(r: &Report, outcome: &Result<(), Stop>) -> Value {
    let mut out = Vec::new();
    r.write_json(outcome, &mut out).expect("written to a Vec");
    let line = String::from_utf8(out).expect("UTF-8");
    assert!(
        line.ends_with('\n') && line.lines().count() == 1,
        "not one line: {line}"
    );
    serde_json::from_str(&line).expect("JSON")
}

#[test]
fn a_passing_run_shows_each_step_and_the_round_trip() {
    let r = passed();
    assert_eq!(
        text(&r, &Ok(())),
        table(&[&[HEADER][..], &PASSED, &[ROUND_TRIP]].concat())
    );
    assert_eq!(
        json(&r, &Ok(())),
        json!({
            "ok": true,
            "broker": "127.0.0.1:1883",
            "transport": "tcp",
            "protocol": "5.0",
            "client_id": "mqttcli-check-7Qx",
            "topic": TOPIC,
            "qos": 1,
            "count": 3,
            "steps": [
                {"step": "connect", "ok": true, "ms": 1.234},
                {"step": "subscribe", "ok": true, "ms": 0.5, "detail": "granted QoS 1"},
                {"step": "publish", "ok": true, "ms": 12.34, "detail": "3 acknowledged"},
                {"step": "receive", "ok": true, "ms": 15.0,
                 "detail": "3 of 3, payloads and order as sent"},
                {"step": "unsubscribe", "ok": true, "ms": 0.25},
                {"step": "disconnect", "ok": true, "ms": 0.1},
            ],
            "latency_ms": {"min": 2.0, "median": 4.0, "max": 13.0, "samples": [4.0, 2.0, 13.0]},
            "error": null,
        })
    );
}

#[test]
fn one_message_is_not_plural() {
    let mut r = passed();
    r.count = 1;
    r.qos = Qos::AtMostOnce;
    let text = text(&r, &Ok(()));
    assert_eq!(
            text.lines().next(),
            Some("checking 127.0.0.1:1883 (tcp, MQTT 5.0) on topic mqttcli/check/AbCd1234EfGh5678 with 1 message at QoS 0")
        );
}

#[test]
fn a_run_failed_at_the_receive_step_names_it_and_its_exit_code() {
    let r = report(vec![
        step(Step::Connect, true, 1_234, ""),
        step(Step::Subscribe, true, 500, "granted QoS 1"),
        step(Step::Publish, true, 12_340, "3 acknowledged"),
        step(Step::Receive, false, 5_000_000, ""),
    ]);
    let message = format!("0 of 3 messages came back within 5s on '{TOPIC}'");
    let outcome = failed_at(Step::Receive, fail(Exit::Timeout, message.clone()));
    assert_eq!(
        text(&r, &outcome),
        table(&[
            HEADER,
            PASSED[0],
            PASSED[1],
            PASSED[2],
            "receive      FAILED  5000.0 ms",
        ])
    );
    let v = json(&r, &outcome);
    assert_eq!(v["ok"], false);
    assert_eq!(v["latency_ms"], Value::Null);
    assert_eq!(
        v["steps"][3],
        json!({"step": "receive", "ok": false, "ms": 5000.0})
    );
    assert_eq!(
        v["error"],
        json!({"step": "receive", "exit_code": 6, "message": message})
    );
    assert!(v.get("probe").is_none(), "{v}");
}

#[test]
fn a_failure_message_carries_its_whole_chain() {
    let r = report(vec![step(Step::Connect, false, 800, "")]);
    let error =
        fail(Exit::Unreachable, "connection refused").context("cannot connect to 127.0.0.1:1883");
    let outcome = failed_at(Step::Connect, error);
    assert_eq!(
        text(&r, &outcome),
        table(&[HEADER, "connect      FAILED    0.80 ms"])
    );
    assert_eq!(
        json(&r, &outcome)["error"],
        json!({
            "step": "connect",
            "exit_code": 3,
            "message": "cannot connect to 127.0.0.1:1883: connection refused",
        })
    );
}

#[test]
fn an_interrupted_run_says_so_after_the_steps_it_finished() {
    // Interrupted at the unsubscribe step: the messages had all come back.
    let mut r = passed();
    r.steps.truncate(4);
    let outcome = Err(Stop::Interrupted);
    assert_eq!(
        text(&r, &outcome),
        table(&[&[HEADER][..], &PASSED[..4], &["interrupted", ROUND_TRIP]].concat())
    );
    let v = json(&r, &outcome);
    assert_eq!(v["ok"], false);
    // The step named is the last one that finished, not the one the signal stopped.
    assert_eq!(
        v["error"],
        json!({"step": "receive", "exit_code": 130, "message": "interrupted"})
    );
    assert_eq!(v["latency_ms"]["samples"], json!([4.0, 2.0, 13.0]));
}

#[test]
fn interrupted_while_connecting_is_the_connect_step() {
    let r = report(Vec::new());
    let outcome = Err(Stop::Interrupted);
    assert_eq!(text(&r, &outcome), table(&[HEADER, "interrupted"]));
    // The exact line, keys in order: scripts may compare it as text.
    let mut out = Vec::new();
    r.write_json(&outcome, &mut out).expect("written to a Vec");
    assert_eq!(
        String::from_utf8(out).expect("UTF-8"),
        format!(
            r#"{{"broker":"127.0.0.1:1883","client_id":"mqttcli-check-7Qx","count":3,"error":{{"exit_code":130,"message":"interrupted","step":"connect"}},"latency_ms":null,"ok":false,"protocol":"5.0","qos":1,"steps":[],"topic":"{TOPIC}","transport":"tcp"}}
"#
        )
    );
}

fn finding(key: &'static str, label: &'static str, allowed: bool, note: &str) -> Finding {
    Finding {
        key,
        label,
        allowed: Some(allowed),
        value: None,
        note: note.to_string(),
    }
}

fn largest(value: Option<u64>, note: &str) -> Finding {
    Finding {
        key: "largest_payload",
        label: "largest payload",
        allowed: None,
        value,
        note: note.to_string(),
    }
}

/// The probe section of the table: the lines after `probe`, which follows the check's.
fn probe_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.get(8), Some(&"probe"), "{text}");
    lines[9..].to_vec()
}

#[test]
fn probe_findings_and_mqtt5_limits() {
    let mut r = passed();
    r.probe = Some(Probe {
        findings: vec![
            finding("qos2", "QoS 2", true, ""),
            finding("wildcard_subscriptions", "wildcard subscriptions", true, ""),
            finding(
                "shared_subscriptions",
                "shared subscriptions",
                false,
                "not authorized (0x87)",
            ),
            finding(
                "retained_messages",
                "retained messages",
                false,
                "publish refused: retain not supported (0x9a)",
            ),
            largest(Some(4096), "8 KiB failed: did not come back within 3s"),
        ],
        limits: Some(BrokerLimits {
            receive_maximum: Some(20),
            maximum_packet_size: Some(5000),
            maximum_qos: Some(1),
            retain_available: Some(false),
            shared_subscriptions: Some(true),
            server_keep_alive: Some(60),
            session_expiry_interval: Some(3600),
            assigned_client_id: Some("not a limit".to_string()),
            ..BrokerLimits::default()
        }),
    });
    let text = text(&r, &Ok(()));
    assert_eq!(
            probe_lines(&text),
            [
                "  QoS 2                    yes",
                "  wildcard subscriptions   yes",
                "  shared subscriptions     no (not authorized (0x87))",
                "  retained messages        no (publish refused: retain not supported (0x9a))",
                "  largest payload          4 KiB (8 KiB failed: did not come back within 3s)",
                "  CONNACK limits           receive maximum 20, maximum packet size 5000 bytes, maximum QoS 1, retain available no, shared subscriptions yes, server keepalive 60 s, session expiry 3600 s",
            ]
        );
    assert_eq!(
        json(&r, &Ok(()))["probe"],
        json!({
            "qos2": {"allowed": true},
            "wildcard_subscriptions": {"allowed": true},
            "shared_subscriptions": {"allowed": false, "note": "not authorized (0x87)"},
            "retained_messages": {
                "allowed": false,
                "note": "publish refused: retain not supported (0x9a)",
            },
            "largest_payload": {
                "bytes": 4096,
                "tried_up_to": 1_048_576,
                "note": "8 KiB failed: did not come back within 3s",
            },
            "connack_limits": {
                "receive_maximum": 20,
                "maximum_packet_size": 5000,
                "maximum_qos": 1,
                "retain_available": false,
                "shared_subscriptions": true,
                "server_keep_alive": 60,
                "session_expiry_interval": 3600,
            },
        })
    );
}

#[test]
fn probe_limits_absent_under_311_and_unstated_under_5() {
    let mut r = passed();
    r.probe = Some(Probe {
        findings: vec![largest(None, "1 KiB failed: interrupted")],
        limits: None,
    });
    assert_eq!(
        probe_lines(&text(&r, &Ok(()))),
        [
            "  largest payload          none (1 KiB failed: interrupted)",
            "  CONNACK limits           none (MQTT 3.1.1 has no CONNACK properties)",
        ]
    );
    assert_eq!(
        json(&r, &Ok(()))["probe"],
        json!({
            "largest_payload": {
                "bytes": null,
                "tried_up_to": 1_048_576,
                "note": "1 KiB failed: interrupted",
            },
            "connack_limits": null,
        })
    );

    r.probe = Some(Probe {
        findings: Vec::new(),
        limits: Some(BrokerLimits::default()),
    });
    assert_eq!(
        probe_lines(&text(&r, &Ok(()))),
        ["  CONNACK limits           none stated"]
    );
    assert_eq!(json(&r, &Ok(()))["probe"], json!({"connack_limits": {}}));
}

#[test]
fn times_keep_two_decimals_below_10_ms_and_one_above() {
    assert_eq!(ms_text(us(9_994)), "9.99 ms");
    assert_eq!(ms_text(us(10_000)), "10.0 ms");
    assert_eq!(ms_text(us(123_456)), "123.5 ms");
    assert_eq!(ms(us(1_234_567)), 1234.567);
}

#[test]
fn median_of_odd_and_even_counts() {
    let d = |ms: u64| Duration::from_millis(ms);
    assert_eq!(stats(&[d(3), d(1), d(2)]), Some((d(1), d(2), d(3))));
    assert_eq!(
        stats(&[d(4), d(1), d(2), d(3)]),
        Some((d(1), d(2) + d(1) / 2, d(4)))
    );
    assert_eq!(stats(&[]), None);
}

#[test]
fn sizes_read_in_binary_units() {
    assert_eq!(bytes_text(1024), "1 KiB");
    assert_eq!(bytes_text(1 << 20), "1 MiB");
    assert_eq!(bytes_text(1000), "1000 bytes");
}
