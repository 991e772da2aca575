//! Every documented failure gives its exit code and one `mqttcli: error: …` line.
//! Usage errors are found before connecting, so most of these need no broker.

use crate::common::{mqttcli, run, Broker, Proto};

/// Run `mqttcli ARGS` against a port where nothing should ever be reached.
fn usage(args: &[&str]) -> crate::common::Out {
    run(mqttcli().args(args).args(["-h", "127.0.0.1", "-p", "1"]))
}

#[test]
fn wildcard_in_publish_topic() {
    usage(&["pub", "-t", "a/+/b", "-m", "x"]).assert_error(2, &["wildcard"]);
    usage(&["pub", "-t", "a/#", "-m", "x"]).assert_error(2, &["wildcard"]);
}

#[test]
fn empty_topic() {
    usage(&["pub", "-t", "", "-m", "x"]).assert_error(2, &["empty"]);
    usage(&["sub", "-t", "", "-W", "5"]).assert_error(2, &["empty"]);
}

#[test]
fn topic_longer_than_65535_bytes() {
    let topic = "x".repeat(65536);
    usage(&["pub", "-t", &topic, "-m", "x"]).assert_error(2, &["65535"]);
}

#[test]
fn malformed_filter() {
    usage(&["sub", "-t", "a/#/b", "-W", "5"]).assert_error(2, &["a/#/b"]);
    usage(&["unsub", "-i", "x", "-t", "a/b+"]).assert_error(2, &["a/b+"]);
}

#[test]
fn qos_3() {
    usage(&["pub", "-t", "a", "-m", "x", "-q", "3"]).assert_error(2, &["qos"]);
    usage(&["sub", "-t", "a", "-q", "3", "-W", "5"]).assert_error(2, &["qos"]);
}

#[test]
fn keepalive_out_of_range() {
    usage(&["pub", "-t", "a", "-m", "x", "-k", "70000"]).assert_error(2, &["70000"]);
    usage(&["pub", "-t", "a", "-m", "x", "-k", "2", "-V", "5"]).assert_error(2, &["keep", "5"]);
}

#[test]
fn no_clean_needs_an_id() {
    usage(&["sub", "-t", "a", "-c", "-W", "5"]).assert_error(2, &["-i"]);
}

#[test]
fn unsub_needs_an_id() {
    usage(&["unsub", "-t", "a"]).assert_error(2, &["-i"]);
}

#[test]
fn exactly_one_payload_source() {
    usage(&["pub", "-t", "a"]).assert_code(2);
    usage(&["pub", "-t", "a", "-m", "x", "-n"]).assert_code(2);
}

#[test]
fn unreadable_payload_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file.bin");
    usage(&["pub", "-t", "a", "-f", missing.to_str().unwrap()])
        .assert_error(2, &["no-such-file.bin"]);
}

#[test]
fn unknown_host_exits_3() {
    run(mqttcli().args([
        "pub",
        "-h",
        "nonexistent.invalid",
        "-t",
        "a",
        "-m",
        "x",
        "--connect-timeout",
        "20s",
    ]))
    .assert_error(3, &["nonexistent.invalid"]);
}

#[test]
fn closed_port_exits_3() {
    // Nothing listens on a port that was free a moment ago (and is not handed out again at once).
    let port = crate::common::broker::free_port().to_string();
    for sub in ["pub", "sub", "unsub"] {
        let mut cmd = mqttcli();
        cmd.args([sub, "-h", "127.0.0.1", "-p", &port, "-t", "a"]);
        match sub {
            "pub" => cmd.args(["-m", "x"]),
            "sub" => cmd.args(["-W", "30"]),
            _ => cmd.args(["-i", "someone"]),
        };
        run(&mut cmd).assert_error(3, &[&port]);
    }
}

#[test]
fn silent_broker_times_out_with_3() {
    // Accepts TCP (the kernel does, from the backlog) but never answers CONNECT.
    let silent = crate::common::fake::FakeBroker::bind();
    let port = silent.port().to_string();
    let start = std::time::Instant::now();
    run(mqttcli()
        .args(["pub", "-h", "127.0.0.1", "-p", &port, "-t", "a", "-m", "x"])
        .args(["--connect-timeout", "500ms"]))
    .assert_error(3, &["time"]);
    assert!(start.elapsed() >= std::time::Duration::from_millis(500));
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn lost_connection_ends_sub_with_3_under_no_reconnect() {
    let broker = Broker::anonymous_mosquitto();
    let sub = crate::common::subscriber(broker.cmd("sub", Proto::V311).args([
        "-t",
        "a",
        "-W",
        "30",
        "--no-reconnect",
    ]));
    drop(broker);
    let out = sub.finish();
    out.assert_code(3);
    assert!(
        out.stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("mqttcli: error: ")),
        "the last stderr line should be the error:\n{}",
        out.stderr
    );
}

#[test]
fn help_exits_0() {
    for args in [
        &["--help"][..],
        &["pub", "--help"],
        &["sub", "--help"],
        &["unsub", "--help"],
    ] {
        let out = run(mqttcli().args(args));
        out.assert_code(0);
        let help = out.stdout_str();
        assert!(help.contains("Usage"), "{args:?}: {help}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
    let help = run(mqttcli().args(["sub", "--help"])).stdout_str();
    for flag in ["--host", "--topic", "--count", "--json"] {
        assert!(help.contains(flag), "sub --help lacks {flag}");
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn publish_refused_by_acl_exits_5() {
    let acl = ["topic readwrite allowed/#"];
    let setup = crate::common::Setup {
        anonymous: true,
        acl: &acl,
        ..Default::default()
    };
    let broker = Broker::mosquitto(&setup);
    // Only MQTT 5 tells a publisher that its message was refused (PUBACK/PUBREC reason code).
    for qos in ["1", "2"] {
        run(broker
            .cmd("pub", Proto::V5)
            .args(["-t", "denied/x", "-q", qos, "-m", "x"]))
        .assert_error(5, &["not authori|notauthori"]);
    }
    run(broker
        .cmd("pub", Proto::V5)
        .args(["-t", "allowed/x", "-q", "1", "-m", "x"]))
    .assert_ok(b"");
}

/// A message larger than the broker takes, under MQTT 5: Mosquitto's `message_size_limit`
/// answers a QoS 1/2 PUBLISH with PUBACK/PUBREC 0x95, and its `max_packet_size` is announced
/// in CONNACK, so mqttcli refuses to send. Both are exit 5 with what to do.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn oversized_publish_under_mqtt5_exits_5() {
    let payload = "a".repeat(3000);
    for (limit, qos, expected) in [
        (
            "message_size_limit 1000",
            "1",
            "refused the request: packet too large (0x95): the message is larger than the broker accepts (its max_packet_size or message_size_limit)",
        ),
        (
            "message_size_limit 1000",
            "2",
            "refused the request: packet too large (0x95): the message is larger than the broker accepts (its max_packet_size or message_size_limit)",
        ),
        ("max_packet_size 1000", "1", ""),
    ] {
        let setup = crate::common::Setup {
            anonymous: true,
            extra: &[limit],
            ..Default::default()
        };
        let broker = Broker::mosquitto(&setup);
        let endpoint = format!("127.0.0.1:{}", broker.port(Proto::V5));
        let out = run(broker
            .cmd("pub", Proto::V5)
            .args(["-t", "t", "-q", qos, "-m", &payload]));
        let line = if expected.is_empty() {
            // 1 + 2 (remaining length) + 3 (topic) + 2 (packet id) + 1 (no properties) + 3000.
            format!(
                "mqttcli: error: 0 of 1 messages acknowledged: a packet of 3009 bytes exceeds the limit of 1000 bytes for {endpoint}: send a smaller message"
            )
        } else {
            format!("mqttcli: error: 0 of 1 messages acknowledged: the broker at {endpoint} {expected}")
        };
        out.assert_exact_error(5, &line);
    }
}

/// `mqttcli bench` runs `mqttcli-bench` from beside the `mqttcli` binary: a `mqttcli` linked
/// into a folder alone says what is missing, and the other subcommands do not need it.
#[test]
fn bench_without_mqttcli_bench_beside_it() {
    // A hard link, not a copy, beside target/'s binaries: a copy is a file open for writing,
    // which a process another test forks meanwhile inherits until it execs, and executing the
    // copy then fails with "text file busy".
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let alone = dir.path().join("mqttcli");
    std::fs::hard_link(env!("CARGO_BIN_EXE_mqttcli"), &alone).unwrap();
    let mut cmd = std::process::Command::new(&alone);
    cmd.args(["bench", "conn", "-h", "127.0.0.1", "-p", "1", "-c", "1"]);
    let out = run(&mut cmd);
    let missing = dir.path().join("mqttcli-bench");
    out.assert_exact_error(
        1,
        &format!(
            "mqttcli: error: mqttcli bench runs {}, which is missing: install mqttcli-bench beside mqttcli \
             (cargo install, the .deb and the release archives carry both)",
            missing.display()
        ),
    );
    run(std::process::Command::new(&alone).arg("--version")).assert_code(0);
}
