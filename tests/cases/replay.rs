//! Record and replay (issue 14): `sub --json` records, `pub --jsonl` replays, `pub -l
//! --topic-sep` publishes a topic per line. The receiver is Mosquitto's own `mosquitto_sub`,
//! printing each message's bytes in hex (`%x`), so what arrives is checked byte for byte by
//! another implementation; its `%U` receive times measure `--speed`. A bad line must leave
//! everything before it published and acknowledged and nothing after it: a marker published
//! once `pub` has exited shows where the replay stopped without waiting for silence.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    mqttcli, programs, run, run_with_timeout, subscriber, unique_id, unique_topic, Broker, Live,
    Out, Proto, Setup, DEADLINE,
};
use Proto::{V311, V5};

const WAIT: Duration = Duration::from_secs(30);

/// An anonymous Mosquitto that logs its SUBACKs, so that a `mosquitto_sub` is known to be
/// subscribed.
fn broker() -> Broker {
    Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["log_type all"],
        ..Setup::default()
    })
}

fn mosquitto_sub_program() -> PathBuf {
    programs::program("mosquitto_pub").with_file_name("mosquitto_sub")
}

/// `mosquitto_sub -V VERSION -q 2 -t FILTER -F FORMAT -C COUNT ARGS…`, returned once
/// subscribed.
#[track_caller]
fn mosquitto_sub(
    broker: &mut Broker,
    proto: Proto,
    filter: &str,
    format: &str,
    count: usize,
    args: &[&str],
) -> Live {
    let id = unique_id();
    let mut cmd = Command::new(mosquitto_sub_program());
    cmd.args(["-h", "127.0.0.1", "-p", &broker.port(proto).to_string()])
        .args(["-V", proto.arg(), "-i", &id, "-q", "2", "-t", filter])
        .args(["-F", format, "-C", &count.to_string(), "-W", "30"])
        .args(args);
    let sub = Live::spawn(&mut cmd, false);
    broker.wait_log(&format!("Sending SUBACK to {id}"), 1, WAIT);
    sub
}

/// `pub --jsonl ARGS…` (or whatever ARGS say) with `input` on stdin, run to its end.
#[track_caller]
fn pub_stdin(broker: &Broker, proto: Proto, args: &[&str], input: &[u8]) -> Out {
    run_with_timeout(
        broker.cmd("pub", proto).args(args),
        Some(input.to_vec()),
        DEADLINE,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines a finished `mosquitto_sub` printed, checked to have succeeded.
#[track_caller]
fn received(sub: Live) -> Vec<String> {
    let out = sub.finish();
    out.assert_code(0);
    out.stdout_str().lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// A recording made with `sub -V 5 --json` (a retained message, text at QoS 0, every byte
/// value at QoS 1, MQTT 5 properties at QoS 2) replays into another broker exactly: payload
/// bytes, QoS, user properties with a repeated key in order, content type, binary correlation
/// data; the retained message is retained there, and only it.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_v5_recording_replays_into_another_broker_byte_for_byte() {
    let source = broker();
    let mut target = broker();
    let prefix = unique_topic();
    let t = |name: &str| format!("{prefix}{name}");
    let binary: Vec<u8> = (0..=255u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("binary");
    std::fs::write(&file, &binary).unwrap();

    // Record.
    let publish = |args: &[&str]| {
        run(source.cmd("pub", V5).args(args)).assert_ok(b"");
    };
    publish(&["-t", &t("retained"), "-q", "1", "-r", "-m", "kept"]);
    let recorder = subscriber(
        source
            .cmd("sub", V5)
            .args(["-t", &format!("{prefix}#"), "-q", "2", "--json"])
            .args(["-C", "4", "-W", "30"]),
    );
    publish(&["-t", &t("text"), "-q", "0", "-m", "héllo \"world\"\t\\"]);
    publish(&["-t", &t("binary"), "-q", "1", "-f", file.to_str().unwrap()]);
    publish(&[
        "-t",
        &t("props"),
        "-q",
        "2",
        "-m",
        "with properties",
        "--user-property",
        "k=v1",
        "--user-property",
        "other=x y",
        "--user-property",
        "k=v2",
        "--content-type",
        "application/octet-stream",
        "--correlation-data-base64",
        "AAEC/w==",
    ]);
    let recording = recorder.finish();
    recording.assert_code(0);
    assert_eq!(
        recording.stdout_str().lines().count(),
        4,
        "{}",
        recording.dump()
    );

    // Replay into the other broker, received by mosquitto_sub.
    let format = "%t|%q|%x|%P|%C|%D";
    let live = mosquitto_sub(&mut target, V5, &format!("{prefix}#"), format, 4, &[]);
    pub_stdin(&target, V5, &["--jsonl"], &recording.stdout).assert_ok(b"");
    let mut got = received(live);
    got.sort();
    let mut expected = vec![
        format!("{}|1|{}|||", t("retained"), hex(b"kept")),
        format!(
            "{}|0|{}|||",
            t("text"),
            hex("héllo \"world\"\t\\".as_bytes())
        ),
        format!("{}|1|{}|||", t("binary"), hex(&binary)),
        // %D prints the correlation data's bytes as they are: 00 01 02 ff.
        format!(
            "{}|2|{}|k:v1 other:x y k:v2|application/octet-stream|\u{0}\u{1}\u{2}\u{fffd}",
            t("props"),
            hex(b"with properties")
        ),
    ];
    expected.sort();
    assert_eq!(got, expected);

    // The retained message is retained on the target, and nothing else is: a plain message
    // published after the subscription ends --retained-only's output.
    let retained = mosquitto_sub(
        &mut target,
        V5,
        &format!("{prefix}#"),
        "%t|%r|%x",
        10,
        &["--retained-only"],
    );
    run(target
        .cmd("pub", V5)
        .args(["-t", &t("zz-marker"), "-m", "end"]))
    .assert_ok(b"");
    assert_eq!(
        received(retained),
        [format!("{}|1|{}", t("retained"), hex(b"kept"))]
    );
}

/// Under `-V 311` a recording's properties cannot be sent: one warning for the whole run,
/// and every message goes out without them, payloads intact.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn properties_are_dropped_with_one_warning_under_mqtt_3_1_1() {
    let mut broker = broker();
    let topic = unique_topic() + "v311";
    let record = |payload: &str| {
        format!(
            r#"{{"topic":"{topic}","qos":1,"retain":false,"time":"2026-01-01T00:00:00.000Z","encoding":"utf8","payload":"{payload}","properties":{{"content_type":"text/plain","user_properties":[["k","v"]]}}}}"#
        )
    };
    let input = format!("{}\n{}\n", record("one"), record("two"));
    let live = mosquitto_sub(&mut broker, V311, &topic, "%t|%q|%p", 2, &[]);
    let out = pub_stdin(&broker, V311, &["--jsonl"], input.as_bytes());
    out.assert_code(0).assert_stdout(b"");
    assert_eq!(
        out.stderr,
        "mqttcli: warning: the recording carries MQTT 5 properties, which MQTT 3.1.1 cannot \
         send: sending its messages without them (use -V 5 to keep them)\n",
        "{}",
        out.dump()
    );
    assert_eq!(
        received(live),
        [format!("{topic}|1|one"), format!("{topic}|1|two")]
    );
}

/// `-t`, `-q` and `-r` fill in what a record lacks; what it has wins; unknown fields and blank
/// lines are passed over.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn flags_are_defaults_for_what_a_record_lacks() {
    let mut broker = broker();
    let prefix = unique_topic();
    let input = format!(
        "{{\"payload\":\"bare\",\"note\":\"ignored\"}}\n\n\
         {{\"topic\":\"{prefix}own\",\"payload\":\"own\",\"qos\":0,\"retain\":false}}\n   \n"
    );
    let live = mosquitto_sub(&mut broker, V5, &format!("{prefix}#"), "%t|%q|%p", 2, &[]);
    let args = ["--jsonl", "-t", &format!("{prefix}default"), "-q", "2"];
    pub_stdin(&broker, V5, &args, input.as_bytes()).assert_ok(b"");
    // Sorted: MQTT keeps the order of messages only within a QoS.
    let mut got = received(live);
    got.sort();
    assert_eq!(
        got,
        [
            format!("{prefix}default|2|bare"),
            format!("{prefix}own|0|own")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// --speed

/// Records 0, 1, 2, 3 and 4 seconds apart in recorded time (the last with no time: it goes
/// right after the one before). Returns each message's arrival at mosquitto_sub, in seconds
/// after the first.
fn paced(speed: &str) -> Vec<f64> {
    let mut broker = broker();
    let topic = unique_topic() + "paced";
    let mut input = String::new();
    for (i, time) in ["00.000", "01.000", "02.000", "03.000", "04.000"]
        .iter()
        .enumerate()
    {
        input += &format!(
            "{{\"topic\":\"{topic}\",\"qos\":1,\"time\":\"2026-01-01T12:00:{time}Z\",\"payload\":\"{i}\"}}\n"
        );
    }
    input += &format!("{{\"topic\":\"{topic}\",\"qos\":1,\"payload\":\"5\"}}\n");
    let live = mosquitto_sub(&mut broker, V5, &topic, "%U|%p", 6, &[]);
    pub_stdin(
        &broker,
        V5,
        &["--jsonl", "--speed", speed],
        input.as_bytes(),
    )
    .assert_ok(b"");
    let lines = received(live);
    let times: Vec<f64> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (at, payload) = l.split_once('|').unwrap();
            assert_eq!(payload, i.to_string(), "out of order: {lines:?}");
            at.parse().unwrap()
        })
        .collect();
    times.iter().map(|t| t - times[0]).collect()
}

/// At `--speed 1` messages arrive as far apart as recorded: none early, and not much late.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn speed_1_replays_as_recorded() {
    let at = paced("1");
    for (i, t) in at.iter().take(5).enumerate() {
        // Early only by what the first message's own delivery took longer than this one's.
        assert!(*t >= i as f64 - 0.25, "message {i} at {t:.3}s: {at:?}");
    }
    assert!(at[4] < 4.0 + 3.0, "message 4 late: {at:?}");
    assert!(
        at[5] - at[4] < 2.0,
        "the untimed last message waited: {at:?}"
    );
}

/// At `--speed 4` the same recording takes a quarter of its time: 1 s, not 4.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn speed_4_replays_four_times_as_fast() {
    let at = paced("4");
    for (i, t) in at.iter().take(5).enumerate() {
        assert!(
            *t >= i as f64 / 4.0 - 0.25,
            "message {i} at {t:.3}s: {at:?}"
        );
    }
    assert!(at[4] < 2.5, "not four times as fast: {at:?}");
}

/// A long capture of close records does not drift: 1500 records 2 ms apart (3 s) arrive
/// within 3 s and a margin. Sleeping each gap in turn would add the timer's overshoot (a
/// millisecond or so) 1500 times.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn pacing_does_not_drift_over_many_records() {
    let mut broker = broker();
    let topic = unique_topic() + "drift";
    const N: u64 = 1500;
    let start = 1_767_268_800_000i64; // 2026-01-01T12:00:00Z in ms
    let mut input = String::new();
    for i in 0..N {
        let ms = start + 2 * i as i64;
        let time = format!("{:.3}", jiff::Timestamp::from_millisecond(ms).unwrap());
        input += &format!("{{\"topic\":\"{topic}\",\"time\":\"{time}\",\"payload\":\"{i}\"}}\n");
    }
    let live = mosquitto_sub(&mut broker, V5, &topic, "%U", N as usize, &[]);
    pub_stdin(
        &broker,
        V5,
        &["--jsonl", "--speed", "1", "-q", "1"],
        input.as_bytes(),
    )
    .assert_ok(b"");
    let times: Vec<f64> = received(live).iter().map(|l| l.parse().unwrap()).collect();
    let span = times[times.len() - 1] - times[0];
    assert!(
        (2.9..3.8).contains(&span),
        "{N} records over 2.998 s recorded arrived over {span:.3} s"
    );
}

// ---------------------------------------------------------------------------------------------
// --topic-sep

/// Each line goes to the topic before the first separator; the rest, separators included,
/// is the payload (empty too). `\t` as typed is a tab; any other string is itself.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn topic_sep_sends_each_line_to_its_own_topic() {
    let mut broker = broker();
    let p = unique_topic();
    let live = mosquitto_sub(&mut broker, V311, &format!("{p}#"), "%t|%q|%x", 5, &[]);
    let tabs = format!("{p}a\tone\n{p}b\ttwo\twith a tab\n{p}a/deeper\t\n");
    let args = ["-l", "--topic-sep", "\\t", "-q", "1"];
    pub_stdin(&broker, V311, &args, tabs.as_bytes()).assert_ok(b"");
    let arrows = format!("{p}c => x => y\n{p}d => \u{ff}");
    let args = ["-l", "--topic-sep", " => ", "-q", "2"];
    pub_stdin(&broker, V311, &args, arrows.as_bytes()).assert_ok(b"");
    assert_eq!(
        received(live),
        [
            format!("{p}a|1|{}", hex(b"one")),
            format!("{p}b|1|{}", hex(b"two\twith a tab")),
            format!("{p}a/deeper|1|"),
            format!("{p}c|2|{}", hex(b"x => y")),
            format!("{p}d|2|{}", hex("\u{ff}".as_bytes())),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Bad lines

/// Lines 1 and 2 are good, line 3 is `bad`, line 4 is good: exit 2 naming line 3 and each of
/// `says`; lines 1 and 2 reached the receiver, line 4 did not (the marker published after
/// `pub` exited comes right after line 2).
#[track_caller]
fn bad_third_line(broker: &mut Broker, args: &[&str], lines: [&str; 4], says: &[&str]) {
    let p = unique_topic();
    let input: String = lines.iter().map(|l| l.replace("P/", &p) + "\n").collect();
    let live = mosquitto_sub(broker, V5, &format!("{p}#"), "%t|%p", 3, &[]);
    let out = pub_stdin(broker, V5, args, input.as_bytes());
    let mut keywords = vec!["line 3 of stdin"];
    keywords.extend_from_slice(says);
    keywords.push("the 2 messages before it were published, nothing after it");
    out.assert_error(2, &keywords);
    run(broker
        .cmd("pub", V5)
        .args(["-t", &format!("{p}marker"), "-q", "1", "-m", "end"]))
    .assert_ok(b"");
    assert_eq!(
        received(live),
        [
            format!("{p}one|1"),
            format!("{p}two|2"),
            format!("{p}marker|end")
        ],
        "{}",
        out.dump()
    );
}

/// Each kind of bad record: not JSON, bad base64, no topic (and no -t), QoS out of range, a
/// wildcard topic.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_bad_record_stops_the_replay_after_everything_before_it() {
    let mut broker = broker();
    let one = r#"{"topic":"P/one","payload":"1","qos":1}"#;
    // All at QoS 1, as the marker: MQTT keeps the order of messages only within a QoS.
    let two = r#"{"topic":"P/two","payload":"2","qos":1}"#;
    let four = r#"{"topic":"P/four","payload":"4","qos":1}"#;
    for (bad, says) in [
        (r#"{"topic":"P/three","payload":"3""#, &["not json"][..]),
        ("plain text", &["not json"]),
        (
            r#"{"topic":"P/three","payload":"!!","encoding":"base64"}"#,
            &["payload is not valid base64"],
        ),
        (r#"{"payload":"3","qos":1}"#, &["no \"topic\"", "-t"]),
        (
            r#"{"topic":"P/three","payload":"3","qos":3}"#,
            &["qos 3 is out of range", "0, 1 or 2"],
        ),
        (r#"{"topic":"P/+/three","payload":"3"}"#, &["wildcard"]),
        (r#"{"topic":"P/#","payload":"3"}"#, &["wildcard"]),
    ] {
        bad_third_line(&mut broker, &["--jsonl"], [one, two, bad, four], says);
    }
}

/// `--topic-sep`: a line without the separator is a bad line like any other.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_line_without_the_separator_stops_the_stream_after_everything_before_it() {
    let mut broker = broker();
    let lines = ["P/one|1", "P/two|2", "three", "P/four|4"];
    // Each line's QoS is -q's: the receiver sees 1 and 2 as the payloads.
    bad_third_line(
        &mut broker,
        &["-l", "--topic-sep", "|", "-q", "1"],
        lines,
        &["no \"|\" in it"],
    );
    let lines = ["P/one|1", "P/two|2", "P/th+ree|3", "P/four|4"];
    bad_third_line(
        &mut broker,
        &["-l", "--topic-sep", "|", "-q", "1"],
        lines,
        &["wildcard"],
    );
}

// ---------------------------------------------------------------------------------------------
// Usage

/// Flags that make no sense together are refused before connecting (nothing listens on the
/// port), each with the fix.
#[test]
fn replay_flags_are_checked_before_connecting() {
    let port = crate::common::broker::free_port().to_string();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--speed", "2", "-t", "a", "-m", "x"],
            "mqttcli: error: --speed paces a replay by its recorded times: add --jsonl (--interval paces -m)",
        ),
        (
            &["--topic-sep", ":", "-m", "x"],
            "mqttcli: error: --topic-sep splits each line of -l into topic and payload: add -l",
        ),
        (
            &["--jsonl", "--speed", "0"],
            "mqttcli: error: invalid value '0' for '--speed <FACTOR>': '0' is not a speed: give a factor above 0, e.g. 1 (as recorded), 10 (ten times faster) or 0.5",
        ),
        (
            &["--jsonl", "-V", "5", "--content-type", "a/b"],
            "mqttcli: error: --jsonl sends the properties recorded on each line: drop -D PUBLISH and the property flags (--user-property, --content-type, ...)",
        ),
        (
            &["--jsonl", "--repeat", "2"],
            "mqttcli: error: --jsonl sends each line once: drop --repeat/--interval (--speed paces a replay by its recorded times)",
        ),
        (
            &["-l", "--topic-sep", ""],
            "mqttcli: error: invalid value '' for '--topic-sep <SEP>': the topic separator is empty: give one, e.g. --topic-sep '\\t' for a tab",
        ),
    ];
    for (args, line) in cases {
        let out = run(mqttcli()
            .args(["pub", "-h", "127.0.0.1", "-p", &port])
            .args(args));
        out.assert_exact_error(2, line);
    }
}

// ---------------------------------------------------------------------------------------------
// Progress

/// A replay shows `pub -l`'s progress line on a terminal: a paced replay of 2 s (so at least
/// one tick of the 1 s redraw) under script(1), which gives it one.
#[test]
#[cfg_attr(no_script, ignore = "needs script (util-linux) for a terminal")]
fn a_replay_shows_progress_on_a_terminal() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.jsonl");
    std::fs::write(
        &file,
        "{\"topic\":\"progress/r\",\"payload\":\"a\",\"time\":\"2026-01-01T00:00:00Z\"}\n\
         {\"topic\":\"progress/r\",\"payload\":\"b\",\"time\":\"2026-01-01T00:00:02Z\"}\n",
    )
    .unwrap();
    let line = format!(
        "{} pub -h 127.0.0.1 -p {} -q 1 --jsonl --speed 1 < {}",
        env!("CARGO_BIN_EXE_mqttcli"),
        broker.port(V311),
        file.display()
    );
    let out = Command::new(programs::program("script"))
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\r\x1b[Kmqttcli: ")
            && shown.contains(" sent, ")
            && shown.contains(" acknowledged, ")
            && shown.contains(" msg/s"),
        "no progress line on a terminal: {shown:?}"
    );
    assert!(
        shown.ends_with("\r\x1b[K"),
        "not cleared at the end: {shown:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Lost connections

/// A replay is a `pub -l` stream: through a relay that cuts its connection twice, a recording
/// of 10 000 records alternating QoS 1 and 2 arrives whole. Under MQTT 3.1.1, where Mosquitto
/// takes only 20 QoS 2 messages in flight and drops the rest unannounced, so this also checks
/// that a recording's QoS 2 messages are held to that even at -q 0. And QoS 2 messages are
/// acknowledged later than the QoS 1 messages sent after them: rumqttc's packet ids must not
/// come round to one still in flight (it would hold that PUBLISH back, and a cut meanwhile
/// leaves it stuck).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn a_mixed_qos_replay_arrives_whole_through_cut_connections() {
    use crate::common::cutproxy::CutProxy;
    use crate::common::lost::{interrupt_sub, pub_progress, show, RECONNECT};
    use std::collections::HashSet;
    use std::io::Write;

    const N: usize = 10_000;
    const CUTS: u64 = 2;
    const STEP: u64 = 2_500;
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        ..Setup::default()
    });
    let port = broker.port(V311);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "mixed";
    let mut sub = subscriber(
        crate::common::at("sub", port, V311).args(["-t", &topic, "-q", "2", "-W", "600"]),
    );
    let mut publisher = Live::spawn(
        crate::common::at("pub", relay.port(), V311)
            .args(["--jsonl", "-q", "0"])
            .args(RECONNECT)
            .env("RUST_LOG", "mqttcli=debug"),
        true,
    );
    let mut stdin = publisher.stdin();
    let input: String = (1..=N)
        .map(|i| {
            format!(
                "{{\"topic\":\"{topic}\",\"qos\":{},\"payload\":\"{i}\"}}\n",
                1 + i % 2
            )
        })
        .collect();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    for cut in 1..=CUTS {
        // PUBACK, PUBREC and PUBCOMP are 4 bytes each: this comes a little early, if anything.
        let acks = cut * STEP;
        relay.wait_until(&format!("{acks} acks"), WAIT, |r| {
            r.bytes_down() >= 4 * acks
        });
        assert_eq!(
            relay.cut(),
            1,
            "cut {cut}: the publisher should be connected"
        );
        publisher.wait_stderr("reconnected to", cut as usize, WAIT);
    }
    let (out, _) = publisher.wait(Duration::from_secs(300));
    feeder.join().unwrap().expect("write the records");
    out.assert_code(0).assert_stdout(b"");
    assert_eq!(
        out.stderr.matches("is still in flight").count(),
        0,
        "a packet id came round to one in flight\n{}",
        show(&out)
    );
    let (acked, produced, sent_again) = pub_progress(&out);
    assert_eq!((acked, produced), (N as u64, N as u64), "{}", show(&out));

    // MQTT orders messages only within a QoS: wait for every value, not for a marker.
    let distinct = |lines: &[String]| lines.iter().collect::<HashSet<_>>().len();
    sub.wait_for("every value", Duration::from_secs(300), |s| {
        s.stdout_lines >= N && distinct(&s.lines()) >= N
    });
    let lines: Vec<String> = interrupt_sub(sub)
        .stdout_str()
        .lines()
        .map(str::to_string)
        .collect();
    let expected: HashSet<String> = (1..=N).map(|i| i.to_string()).collect();
    assert_eq!(lines.iter().cloned().collect::<HashSet<_>>(), expected);
    let duplicates = (lines.len() - N) as u64;
    assert!(
        duplicates <= sent_again,
        "{duplicates} duplicates, more than the {sent_again} sent again"
    );
}
