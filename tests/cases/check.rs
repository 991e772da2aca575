//! `mqttcli check` against a real broker: the table and `--json` of a passing check, each failing
//! step with its exit code (unreachable 3, refused CONNACK 4, refused publish 5, messages that
//! never return 6), and `--probe`'s findings on an open broker and on one with limits.
//!
//! Timings are only checked for shape and for a bound (< 30 s): a loaded machine may be slow.

use serde_json::Value;

use crate::common::broker::free_port;
use crate::common::{at, run, Broker, Out, Proto, Setup};
use Proto::{V311, V5};

const USER: &str = "checker";
const PASSWORD: &str = "check-pw-7";

/// The steps of a complete check, in order.
const STEPS: [&str; 6] = [
    "connect",
    "subscribe",
    "publish",
    "receive",
    "unsubscribe",
    "disconnect",
];

fn protocol_name(proto: Proto) -> &'static str {
    match proto {
        V311 => "3.1.1",
        V5 => "5.0",
    }
}

/// `PREFIX/` and 16 letters and digits.
#[track_caller]
fn assert_check_topic(topic: &str, prefix: &str) {
    let suffix = topic
        .strip_prefix(&format!("{prefix}/"))
        .unwrap_or_else(|| panic!("topic '{topic}' does not start with '{prefix}/'"));
    assert!(
        suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "topic '{topic}': the suffix should be 16 letters and digits"
    );
}

/// A time as the table prints it: `0.27 ms`, `12.5 ms`; returned in milliseconds.
#[track_caller]
fn table_ms(text: &str) -> f64 {
    let number = text
        .strip_suffix(" ms")
        .unwrap_or_else(|| panic!("'{text}' is not a time in ms"));
    let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
    let ms: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("'{text}' is not a time in ms"));
    assert!(
        decimals == if ms < 10.0 { 2 } else { 1 },
        "'{text}': two decimals below 10 ms, one above"
    );
    assert!((0.0..30_000.0).contains(&ms), "'{text}' out of bounds");
    ms
}

/// One step line of the table: (step, "ok" or "FAILED", ms, detail).
#[track_caller]
fn step_line(line: &str) -> (String, String, f64, String) {
    assert!(line.len() >= 30, "step line too short: '{line}'");
    let (name, status, time, rest) = (&line[..12], &line[13..19], &line[19..30], &line[30..]);
    assert_eq!(&line[12..13], " ", "step line '{line}'");
    let detail = match rest {
        "" => String::new(),
        r => r
            .strip_prefix("  ")
            .unwrap_or_else(|| panic!("detail not after two spaces: '{line}'"))
            .to_string(),
    };
    (
        name.trim_end().to_string(),
        status.trim_end().to_string(),
        table_ms(time.trim_start()),
        detail,
    )
}

/// Parse `--json` output: exactly one line, one object.
#[track_caller]
fn json_of(out: &Out) -> Value {
    let text = out.stdout_str();
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "--json should print one line:\n{text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[track_caller]
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

#[track_caller]
fn ms_field(v: &Value) -> f64 {
    let ms = v
        .as_f64()
        .unwrap_or_else(|| panic!("'{v}' is not a number"));
    assert!((0.0..30_000.0).contains(&ms), "{ms} ms out of bounds");
    ms
}

/// The steps of a JSON report: (step, ok, detail or None); each `ms` is checked for bounds.
#[track_caller]
fn json_steps(report: &Value) -> Vec<(String, bool, Option<String>)> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("steps is not an array: {report}"))
        .iter()
        .map(|s| {
            let has_detail = s.get("detail").is_some();
            let mut want = vec!["ms", "ok", "step"];
            if has_detail {
                want.insert(0, "detail");
            }
            assert_eq!(keys(s), want, "step {s}");
            ms_field(&s["ms"]);
            (
                s["step"].as_str().expect("step name").to_string(),
                s["ok"].as_bool().expect("ok is a bool"),
                s.get("detail")
                    .map(|d| d.as_str().expect("detail").to_string()),
            )
        })
        .collect()
}

fn steps(list: &[(&str, bool, Option<&str>)]) -> Vec<(String, bool, Option<String>)> {
    list.iter()
        .map(|(s, ok, d)| (s.to_string(), *ok, d.map(str::to_string)))
        .collect()
}

/// A Mosquitto with one user whose ACL allows reading `ronly/#`, writing `wonly/#` and both on
/// `rw/#`.
fn acl_broker() -> Broker {
    Broker::mosquitto(&Setup {
        users: &[(USER, PASSWORD)],
        acl: &[
            &format!("user {USER}"),
            "topic read ronly/#",
            "topic write wonly/#",
            "topic readwrite rw/#",
        ],
        ..Setup::default()
    })
}

// ---------------------------------------------------------------------------------------------
// success

fn check_passes_with_timings(proto: Proto) {
    let broker = Broker::start();
    let port = broker.port(proto);
    let out = run(&mut at("check", port, proto));
    out.assert_code(0);
    assert_eq!(out.stderr, "", "a passing check is silent on stderr");
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "header, six steps, round trip:\n{text}");
    let header = format!(
        "checking 127.0.0.1:{port} (tcp, MQTT {}) on topic ",
        protocol_name(proto)
    );
    let rest = lines[0]
        .strip_prefix(&header)
        .unwrap_or_else(|| panic!("header '{}'", lines[0]));
    let (topic, tail) = rest.split_once(' ').expect("topic then the rest");
    assert_check_topic(topic, "mqttcli/check");
    assert_eq!(tail, "with 3 messages at QoS 1");
    let details = [
        "",
        "granted QoS 1",
        "3 acknowledged",
        "3 of 3, payloads and order as sent",
        "",
        "",
    ];
    for (i, line) in lines[1..7].iter().enumerate() {
        let (name, status, _, detail) = step_line(line);
        assert_eq!(
            (name.as_str(), status.as_str(), detail.as_str()),
            (STEPS[i], "ok", details[i]),
            "line '{line}'"
        );
    }
    let rt = lines[7]
        .strip_prefix("round trip   min ")
        .unwrap_or_else(|| panic!("round trip line '{}'", lines[7]));
    let parts: Vec<&str> = rt.split(", ").collect();
    assert_eq!(parts.len(), 3, "round trip line '{}'", lines[7]);
    let min = table_ms(parts[0]);
    let median = table_ms(parts[1].strip_prefix("median ").expect("median"));
    let max = table_ms(parts[2].strip_prefix("max ").expect("max"));
    assert!(min <= median && median <= max, "'{}'", lines[7]);
}

#[test]
fn check_passes_with_timings_v311() {
    check_passes_with_timings(V311);
}

#[test]
fn check_passes_with_timings_v5() {
    check_passes_with_timings(V5);
}

#[test]
fn check_json_reports_every_field() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let out = run(at("check", port, V5).args([
        "--json",
        "-q",
        "2",
        "-C",
        "5",
        "-t",
        "ci/smoke/",
        "-I",
        "ci-probe-",
    ]));
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    let r = json_of(&out);
    assert_eq!(
        keys(&r),
        [
            "broker",
            "client_id",
            "count",
            "error",
            "latency_ms",
            "ok",
            "protocol",
            "qos",
            "steps",
            "topic",
            "transport"
        ],
        "{r}"
    );
    assert_eq!(r["ok"], true);
    assert_eq!(r["broker"], format!("127.0.0.1:{port}"));
    assert_eq!(r["transport"], "tcp");
    assert_eq!(r["protocol"], "5.0");
    let id = r["client_id"].as_str().expect("client_id");
    let suffix = id.strip_prefix("ci-probe-").expect("-I prefix");
    assert!(suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_alphanumeric()));
    // The trailing slash of -t is not doubled.
    assert_check_topic(r["topic"].as_str().expect("topic"), "ci/smoke");
    assert_eq!(r["qos"], 2);
    assert_eq!(r["count"], 5);
    assert_eq!(r["error"], Value::Null);
    assert_eq!(
        json_steps(&r),
        steps(&[
            ("connect", true, None),
            ("subscribe", true, Some("granted QoS 2")),
            ("publish", true, Some("5 acknowledged")),
            ("receive", true, Some("5 of 5, payloads and order as sent")),
            ("unsubscribe", true, None),
            ("disconnect", true, None),
        ])
    );
    let lat = &r["latency_ms"];
    assert_eq!(keys(lat), ["max", "median", "min", "samples"]);
    let samples: Vec<f64> = lat["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(ms_field)
        .collect();
    assert_eq!(samples.len(), 5);
    let (min, median, max) = (
        ms_field(&lat["min"]),
        ms_field(&lat["median"]),
        ms_field(&lat["max"]),
    );
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(
        (min, median, max),
        (sorted[0], sorted[2], sorted[4]),
        "{lat}"
    );
}

#[test]
fn check_at_qos_0_counts_messages_written() {
    let broker = Broker::start();
    let out = run(at("check", broker.port(V311), V311).args(["--json", "-q", "0", "-C", "1"]));
    out.assert_code(0);
    let r = json_of(&out);
    assert_eq!((r["qos"].clone(), r["count"].clone()), (0.into(), 1.into()));
    assert_eq!(
        json_steps(&r),
        steps(&[
            ("connect", true, None),
            ("subscribe", true, Some("granted QoS 0")),
            ("publish", true, Some("1 written")),
            ("receive", true, Some("1 of 1, payloads and order as sent")),
            ("unsubscribe", true, None),
            ("disconnect", true, None),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// failing steps

#[test]
fn check_names_the_connect_step_when_nothing_listens_exit_3() {
    let port = free_port();
    let message = format!(
        "cannot connect to 127.0.0.1:{port}: connection refused: is the broker running, and is -p right?"
    );
    for proto in [V311, V5] {
        let out = run(&mut at("check", port, proto));
        out.assert_code(3);
        assert_eq!(
            out.stderr,
            format!("mqttcli: error: check failed at the connect step: {message}\n")
        );
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "header and the failed step:\n{text}");
        assert!(lines[0].starts_with(&format!(
            "checking 127.0.0.1:{port} (tcp, MQTT {}) on topic mqttcli/check/",
            protocol_name(proto)
        )));
        let (name, status, _, detail) = step_line(lines[1]);
        assert_eq!(
            (name.as_str(), status.as_str(), detail.as_str()),
            ("connect", "FAILED", "")
        );

        let out = run(at("check", port, proto).arg("--json"));
        out.assert_code(3);
        assert_eq!(
            out.stderr,
            format!("mqttcli: error: check failed at the connect step: {message}\n")
        );
        let r = json_of(&out);
        assert_eq!(r["ok"], false);
        assert_eq!(r["latency_ms"], Value::Null);
        assert_eq!(json_steps(&r), steps(&[("connect", false, None)]));
        assert_eq!(
            r["error"],
            serde_json::json!({"step": "connect", "exit_code": 3, "message": message})
        );
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn check_names_the_connect_step_when_credentials_are_refused_exit_4() {
    let broker = acl_broker();
    let port = broker.port(V311);
    for (proto, reason) in [
        (V311, "not authorised (CONNACK code 5)"),
        (V5, "not authorized (CONNACK code 135)"),
    ] {
        let message = format!(
            "the broker at 127.0.0.1:{port} refused the connection: {reason}: check the username and password (-u with -P, --password-file or MQTT_PASSWORD) and the broker's access rules"
        );
        let out = run(at("check", port, proto).args(["--json", "-u", USER, "-P", "wrong-pw-1"]));
        out.assert_code(4);
        assert_eq!(
            out.stderr,
            format!("mqttcli: error: check failed at the connect step: {message}\n")
        );
        assert!(!out.stdout_str().contains("wrong-pw-1"), "password printed");
        let r = json_of(&out);
        assert_eq!(r["ok"], false);
        assert_eq!(json_steps(&r), steps(&[("connect", false, None)]));
        assert_eq!(
            r["error"],
            serde_json::json!({"step": "connect", "exit_code": 4, "message": message})
        );
    }
}

/// The receive step timing out: the messages were acknowledged but never came back.
#[track_caller]
fn assert_never_returned(out: &Out, proto: Proto) {
    out.assert_code(6);
    let r = json_of(out);
    let topic = r["topic"].as_str().expect("topic").to_string();
    let message = format!(
        "0 of 3 messages came back within 5s on '{topic}': the broker may not let this client read or write it (check its access rules, or choose a prefix with -t)"
    );
    assert_eq!(
        out.stderr,
        format!("mqttcli: error: check failed at the receive step: {message}\n"),
        "{proto:?}"
    );
    assert_eq!(r["ok"], false);
    assert_eq!(r["latency_ms"], Value::Null);
    assert_eq!(
        json_steps(&r),
        steps(&[
            ("connect", true, None),
            ("subscribe", true, Some("granted QoS 1")),
            ("publish", true, Some("3 acknowledged")),
            ("receive", false, None),
        ]),
        "{proto:?}"
    );
    assert_eq!(
        r["error"],
        serde_json::json!({"step": "receive", "exit_code": 6, "message": message})
    );
}

/// Mosquitto 2.0.11 answers a SUBSCRIBE that its ACL forbids with a SUBACK granting it, and
/// then delivers nothing: the check sees the subscribe step pass and the messages never
/// return (exit 6), under both protocol versions.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn check_subscribe_denied_by_the_acl_is_messages_never_returning_exit_6() {
    let broker = acl_broker();
    for proto in [V311, V5] {
        let out = run(at("check", broker.port(proto), proto).args([
            "--json", "-u", USER, "-P", PASSWORD, "-t", "wonly", "-W", "5s",
        ]));
        assert_never_returned(&out, proto);
    }
}

/// Publishing is what the ACL forbids: under 3.1.1 Mosquitto acknowledges and drops the
/// messages (exit 6 at the receive step); under MQTT 5 its PUBACK says "not authorized" (exit 5
/// at the publish step).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn check_publish_denied_by_the_acl() {
    let broker = acl_broker();
    let port = broker.port(V311);
    let out = run(at("check", port, V311).args([
        "--json", "-u", USER, "-P", PASSWORD, "-t", "ronly", "-W", "5s",
    ]));
    assert_never_returned(&out, V311);

    let out = run(at("check", port, V5).args([
        "--json", "-u", USER, "-P", PASSWORD, "-t", "ronly", "-W", "5s",
    ]));
    out.assert_code(5);
    let r = json_of(&out);
    let topic = r["topic"].as_str().expect("topic").to_string();
    let message = format!("the broker refused a publish to '{topic}': not authorized (0x87)");
    assert_eq!(
        out.stderr,
        format!("mqttcli: error: check failed at the publish step: {message}\n")
    );
    assert_eq!(
        json_steps(&r),
        steps(&[
            ("connect", true, None),
            ("subscribe", true, Some("granted QoS 1")),
            ("publish", false, None),
        ])
    );
    assert_eq!(
        r["error"],
        serde_json::json!({"step": "publish", "exit_code": 5, "message": message})
    );

    // The table shows the same steps.
    let out =
        run(at("check", port, V5).args(["-u", USER, "-P", PASSWORD, "-t", "ronly", "-W", "5s"]));
    out.assert_code(5);
    let text = out.stdout_str();
    let rows: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (name, status, _, _) = step_line(l);
            (name, status)
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("connect", "ok"),
        ("subscribe", "ok"),
        ("publish", "FAILED"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(rows, want, "{text}");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn check_passes_where_the_acl_allows_the_prefix() {
    let broker = acl_broker();
    for proto in [V311, V5] {
        let out = run(at("check", broker.port(proto), proto)
            .args(["--json", "-u", USER, "-P", PASSWORD, "-t", "rw"]));
        out.assert_code(0);
        assert_eq!(json_of(&out)["ok"], true);
    }
}

#[test]
fn check_rejects_bad_values_before_connecting() {
    // Nothing listens on the port: a usage error must come first.
    let port = free_port();
    let out = run(at("check", port, V311).args(["-C", "0"]));
    out.assert_exact_error(
        2,
        "mqttcli: error: invalid value '0' for '--count <N>': '0' is not a count from 1 to 10000",
    );
}

// ---------------------------------------------------------------------------------------------
// --probe

/// `--probe --json`'s `probe` object (after a passing check).
#[track_caller]
fn probe_of(out: &Out) -> Value {
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    let r = json_of(out);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["error"], Value::Null);
    let p = r["probe"].clone();
    assert_eq!(
        keys(&p),
        [
            "connack_limits",
            "largest_payload",
            "qos2",
            "retained_messages",
            "shared_subscriptions",
            "wildcard_subscriptions"
        ],
        "{p}"
    );
    p
}

/// The probe section of the table: the lines after `probe`.
#[track_caller]
fn probe_table(out: &Out) -> Vec<String> {
    out.assert_code(0);
    let text = out.stdout_str();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l == "probe")
        .unwrap_or_else(|| panic!("no 'probe' line:\n{text}"));
    assert_eq!(at, 8, "the probe follows the check's table:\n{text}");
    lines[at + 1..].to_vec()
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn probe_finds_everything_allowed_on_an_open_mosquitto() {
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        ..Setup::default()
    });
    for proto in [V311, V5] {
        let port = broker.port(proto);
        let p = probe_of(&run(at("check", port, proto).args(["--probe", "--json"])));
        for key in [
            "qos2",
            "wildcard_subscriptions",
            "shared_subscriptions",
            "retained_messages",
        ] {
            assert_eq!(
                p[key],
                serde_json::json!({"allowed": true}),
                "{proto:?} {key}"
            );
        }
        assert_eq!(
            p["largest_payload"],
            serde_json::json!({"bytes": 1 << 20, "tried_up_to": 1 << 20, "note": "the largest tried"}),
            "{proto:?}"
        );
        match proto {
            V311 => assert_eq!(p["connack_limits"], Value::Null),
            V5 => {
                // Nothing limited: no maximum QoS, packet size or retain flag is stated.
                let limits = &p["connack_limits"];
                assert!(limits.is_object(), "{limits}");
                for key in ["maximum_qos", "maximum_packet_size", "retain_available"] {
                    assert!(limits.get(key).is_none(), "{key} in {limits}");
                }
            }
        }

        let table = probe_table(&run(at("check", port, proto).arg("--probe")));
        assert_eq!(
            table[..5],
            [
                "  QoS 2                    yes",
                "  wildcard subscriptions   yes",
                "  shared subscriptions     yes",
                "  retained messages        yes",
                "  largest payload          1 MiB (the largest tried)",
            ],
            "{proto:?}"
        );
        assert_eq!(table.len(), 6, "{table:?}");
        if proto == V311 {
            assert_eq!(
                table[5],
                "  CONNACK limits           none (MQTT 3.1.1 has no CONNACK properties)"
            );
        } else {
            assert!(
                table[5].starts_with("  CONNACK limits           "),
                "{table:?}"
            );
        }
    }
}

/// A Mosquitto that caps packets at 5000 bytes, QoS at 1 and has no retained messages: it
/// closes the connection at a QoS 2 or retained publish (under MQTT 5 with a DISCONNECT that
/// says why, without a property length), and the probe must carry on after each (a closed
/// connection used to spoil the payload size finding).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn probe_reports_the_limits_of_a_restricted_mosquitto() {
    let limits = ["max_packet_size 5000\nmax_qos 1\nretain_available false".to_string()];
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        listeners: &limits,
        ..Setup::default()
    });
    let port = broker.listener_port(0);
    for proto in [V311, V5] {
        let p = probe_of(&run(at("check", port, proto).args(["--probe", "--json"])));
        assert_eq!(p["qos2"]["allowed"], false, "{proto:?} {p}");
        assert_eq!(p["retained_messages"]["allowed"], false, "{proto:?} {p}");
        for (key, reason) in [
            ("qos2", "QoS not supported (0x9b)"),
            ("retained_messages", "retain not supported (0x9a)"),
        ] {
            let note = p[key]["note"].as_str().unwrap_or_default();
            let expected = match proto {
                V5 => format!("the broker at 127.0.0.1:{port} ended the connection: {reason}"),
                _ => format!("lost the connection to 127.0.0.1:{port}"),
            };
            assert!(note.starts_with(&expected), "{proto:?} {key}: {p}");
        }
        assert_eq!(
            p["wildcard_subscriptions"],
            serde_json::json!({"allowed": true})
        );
        assert_eq!(
            p["shared_subscriptions"],
            serde_json::json!({"allowed": true})
        );
        let largest = &p["largest_payload"];
        assert_eq!(largest["bytes"], 4096, "{proto:?} {largest}");
        assert_eq!(largest["tried_up_to"], 1 << 20);
        assert!(
            largest["note"]
                .as_str()
                .unwrap_or_default()
                .starts_with("8 KiB failed: "),
            "{proto:?} {largest}"
        );
        match proto {
            V311 => assert_eq!(p["connack_limits"], Value::Null),
            V5 => {
                let l = &p["connack_limits"];
                assert_eq!(l["maximum_packet_size"], 5000, "{l}");
                assert_eq!(l["maximum_qos"], 1, "{l}");
                assert_eq!(l["retain_available"], false, "{l}");
            }
        }

        let table = probe_table(&run(at("check", port, proto).arg("--probe")));
        assert_eq!(table.len(), 6, "{table:?}");
        assert!(
            table[0].starts_with("  QoS 2                    no ("),
            "{table:?}"
        );
        assert_eq!(table[1], "  wildcard subscriptions   yes");
        assert_eq!(table[2], "  shared subscriptions     yes");
        assert!(
            table[3].starts_with("  retained messages        no ("),
            "{table:?}"
        );
        assert!(
            table[4].starts_with("  largest payload          4 KiB (8 KiB failed: "),
            "{table:?}"
        );
        if proto == V5 {
            let limits = table[5]
                .strip_prefix("  CONNACK limits           ")
                .expect("CONNACK line");
            for part in [
                "maximum packet size 5000 bytes",
                "maximum QoS 1",
                "retain available no",
            ] {
                assert!(limits.split(", ").any(|p| p == part), "{part}: {table:?}");
            }
        }
    }
}

#[test]
fn probe_is_skipped_when_the_check_fails() {
    let port = free_port();
    let out = run(at("check", port, V5).args(["--probe", "--json"]));
    out.assert_code(3);
    let r = json_of(&out);
    assert!(r.get("probe").is_none(), "{r}");
}
