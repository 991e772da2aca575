//! `mqttcli bench` (issue 15) against a Mosquitto of its own, checked by a reference peer:
//! what `bench pub` sends is counted and decoded by `mosquitto_sub`; what `bench sub` counts
//! is a handcrafted stream sent by `mosquitto_pub`, with a gap, a duplicate and an overtaken
//! message in it. Small loads only: counts are asserted, never speeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::broker::free_port;
use crate::common::fake::{packet, FakeBroker};
use crate::common::{
    mqttcli, programs, run, run_with_timeout, signal, unique_id, unique_topic, Broker, Live, Out,
    Proto, Setup,
};
use Proto::{V311, V5};

/// For subscribers to subscribe and runs to end; reached only when something is broken.
const WAIT: Duration = Duration::from_secs(60);

/// An anonymous Mosquitto that logs every packet (for `Broker::wait_log`).
fn mosquitto() -> Broker {
    Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["log_type all"],
        ..Setup::default()
    })
}

/// `PROGRAM -h 127.0.0.1 -p PORT -V 311`, a Mosquitto client.
fn reference(program: &str, broker: &Broker) -> Command {
    let path = programs::program("mosquitto_pub").with_file_name(program);
    let mut cmd = Command::new(path);
    cmd.args(["-h", "127.0.0.1", "-p", &broker.port(V311).to_string()])
        .args(["-V", "311"]);
    cmd
}

/// `mosquitto_sub -t FILTER -F '%t %x' -C COUNT`, returned once Mosquitto has sent its SUBACK.
fn mosquitto_sub(broker: &mut Broker, filter: &str, count: usize) -> Live {
    let id = unique_id();
    let mut cmd = reference("mosquitto_sub", broker);
    cmd.args(["-i", &id, "-t", filter, "-q", "1", "-F", "%t %x"])
        .args(["-C", &count.to_string(), "-W", "60"]);
    let sub = Live::spawn(&mut cmd, false);
    broker.wait_log(&format!("Sending SUBACK to {id}"), 1, WAIT);
    sub
}

/// `mqttcli bench KIND -h 127.0.0.1 -p PORT -V VERSION`: the connection flags belong to the
/// kind's subcommand.
fn bench(kind: &str, port: u16, proto: Proto) -> Command {
    let mut cmd = mqttcli();
    cmd.args(["bench", kind, "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", proto.arg()]);
    cmd
}

/// `mqttcli bench merge FILES...`
fn merge(args: &[&str], files: &[PathBuf]) -> Out {
    run(mqttcli().args(["bench", "merge"]).args(args).args(files))
}

/// A `bench sub` that has announced all its clients subscribed.
fn bench_sub(broker: &Broker, proto: Proto, args: &[&str]) -> Live {
    let mut cmd = bench("sub", broker.port(proto), proto);
    // Bounded: a subscriber that misses its count ends with what it has, and the test fails
    // on the counts rather than hanging.
    cmd.args(["--duration", "60s", "--json"]).args(args);
    let mut sub = Live::spawn(&mut cmd, false);
    sub.wait_stderr("clients subscribed", 1, WAIT);
    sub
}

#[track_caller]
fn summary(out: &Out) -> Value {
    let text = out.stdout_str();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not one JSON summary ({e})\n{}", out.dump()))
}

/// A header as the README documents it, byte by byte: MQB1, µs since the epoch, publisher,
/// sequence, big-endian.
fn header(publisher: u32, seq: u64) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut h = b"MQB1".to_vec();
    h.extend_from_slice(&(now.as_micros() as u64).to_be_bytes());
    h.extend_from_slice(&publisher.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(b"padding");
    h
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Every message `bench pub` sends reaches mosquitto_sub, once, on the client's own topic
/// (`%i` with the offset), padded to -s, starting with a header that names the publisher and
/// counts from 0; the broker saw the ids PREFIX and index.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn pub_messages_reach_mosquitto_sub_with_the_header() {
    let mut broker = mosquitto();
    let t = unique_topic();
    let sub = mosquitto_sub(&mut broker, &format!("{t}#"), 60);
    let out = run(bench("pub", broker.port(V311), V311).args([
        "-c",
        "3",
        "-n",
        "20",
        "-q",
        "1",
        "-s",
        "40",
        "--client-offset",
        "5",
        "-t",
        &format!("{t}%i"),
        "--json",
    ]));
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!(s["kind"], "pub");
    assert_eq!(
        (&s["clients"], &s["connected"], &s["sent"], &s["acked"]),
        (&3.into(), &3.into(), &60.into(), &60.into()),
        "{s:#}"
    );
    assert_eq!(s["unacknowledged"], 0);
    assert_eq!(s["latency_ms"]["publish"]["count"], 60);
    assert_eq!(s["latency_ms"]["connect"]["count"], 3);
    assert!(s["histograms"]["publish"].as_str().unwrap().len() > 10);

    let got = sub.wait(WAIT).0;
    got.assert_code(0);
    let mut seqs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in got.stdout_str().lines() {
        let (topic, hex) = line.split_once(' ').unwrap();
        let index: u64 = topic.strip_prefix(&t).unwrap().parse().unwrap();
        assert_eq!(hex.len(), 80, "a 40-byte payload: {line}");
        assert_eq!(&hex[..8], "4d514231", "MQB1 first: {line}");
        let publisher = u64::from_str_radix(&hex[24..32], 16).unwrap();
        assert_eq!(
            publisher, index,
            "the header names the topic's client: {line}"
        );
        seqs.entry(index)
            .or_default()
            .push(u64::from_str_radix(&hex[32..48], 16).unwrap());
    }
    let want: Vec<u64> = (0..20).collect();
    assert_eq!(seqs.keys().copied().collect::<Vec<_>>(), [5, 6, 7]);
    for (index, s) in &seqs {
        assert_eq!(s, &want, "client {index}'s sequence");
    }
    let log = broker.log_text();
    for id in [
        "mqttcli-bench-pub-5",
        "mqttcli-bench-pub-6",
        "mqttcli-bench-pub-7",
    ] {
        assert!(log.contains(&format!(" as {id} ")), "{id} not in the log");
    }
}

/// A stream published by mosquitto_pub, one message at a time: sequence 0, 1, 3, 3, 2, 5 and
/// a payload without a header. Each of the two subscribers sees one lost (4), one duplicate
/// (3), one overtaken (2) and one without a header; a loss makes the exit code 5.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn sub_counts_loss_duplicates_and_reordering_of_a_known_stream() {
    let broker = mosquitto();
    let t = unique_topic();
    let sub = bench_sub(
        &broker,
        V311,
        &["-c", "2", "-q", "1", "-n", "7", "-t", &format!("{t}#")],
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, seq) in [0u64, 1, 3, 3, 2, 5].into_iter().enumerate() {
        let file = write(dir.path(), &format!("m{i}"), &header(9, seq));
        run(reference("mosquitto_pub", &broker)
            .args(["-t", &format!("{t}stream"), "-q", "1", "-f"])
            .arg(&file))
        .assert_code(0);
    }
    run(reference("mosquitto_pub", &broker).args([
        "-t",
        &format!("{t}other"),
        "-q",
        "1",
        "-m",
        "no header",
    ]))
    .assert_code(0);
    let out = sub.wait(WAIT).0;
    let s = summary(&out);
    assert_eq!(s["kind"], "sub");
    let counts: Vec<u64> = [
        "received",
        "lost",
        "duplicates",
        "reordered",
        "without_header",
    ]
    .iter()
    .map(|k| s[*k].as_u64().unwrap())
    .collect();
    assert_eq!(counts, [14, 2, 2, 2, 2], "{s:#}");
    // Latency of every message with a header but the duplicates: 0, 1, 3, 2, 5, twice.
    assert_eq!(s["latency_ms"]["end_to_end"]["count"], 10, "{s:#}");
    out.assert_code(5);
}

/// bench pub to bench sub, end to end: two publishing runs side by side (as on two
/// machines, with --client-offset), their summaries merged, and the subscriber's counts.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_to_sub_and_merge_of_two_runs_adds_up() {
    let broker = mosquitto();
    let t = unique_topic();
    let sub = bench_sub(
        &broker,
        V5,
        &["-c", "2", "-q", "1", "-n", "80", "-t", &format!("{t}#")],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for offset in ["0", "2"] {
        let out = run(bench("pub", broker.port(V5), V5).args([
            "-c",
            "2",
            "-n",
            "20",
            "-q",
            "2",
            "--rate",
            "200",
            "--client-offset",
            offset,
            "-t",
            &format!("{t}%i"),
            "--json",
        ]));
        out.assert_code(0);
        files.push(write(dir.path(), &format!("{offset}.json"), &out.stdout));
    }
    let out = merge(&["--json"], &files);
    let read =
        |f: &PathBuf| -> Value { serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap() };
    let (a, b, m) = (read(&files[0]), read(&files[1]), summary(&out));
    out.assert_code(0);
    assert_eq!(m["runs"], 2);
    for field in ["clients", "connected", "sent", "acked"] {
        let sum = a[field].as_u64().unwrap() + b[field].as_u64().unwrap();
        assert_eq!(m[field], sum, "{field}: {m:#}");
    }
    assert_eq!(m["sent"], 80);
    assert_eq!(m["latency_ms"]["publish"]["count"], 80);
    let rate =
        a["rates"]["sent_per_s"].as_f64().unwrap() + b["rates"]["sent_per_s"].as_f64().unwrap();
    assert!(
        (m["rates"]["sent_per_s"].as_f64().unwrap() - rate).abs() < 0.11,
        "{m:#}"
    );
    // The table form of the same merge.
    let table = merge(&[], &files);
    table.assert_code(0);
    assert!(
        table
            .stdout_str()
            .starts_with("bench pub: 4 clients, 4 connected"),
        "{}",
        table.dump()
    );

    let got = sub.wait(WAIT).0;
    let s = summary(&got);
    assert_eq!(
        (
            &s["received"],
            &s["lost"],
            &s["duplicates"],
            &s["reordered"]
        ),
        (&160.into(), &0.into(), &0.into(), &0.into()),
        "{s:#}"
    );
    assert_eq!(s["latency_ms"]["end_to_end"]["count"], 160);
    got.assert_code(0);
}

/// bench conn holds its connections for --duration; against a port nobody listens on, every
/// failure is counted under one reason and the exit code says why.
#[test]
fn conn_counts_connections_and_failures_by_reason() {
    let broker = Broker::start();
    let out =
        run(bench("conn", broker.port(V311), V311).args(["-c", "3", "--duration", "1s", "--json"]));
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!(
        (&s["connected"], &s["connect_failed"]),
        (&3.into(), &0.into()),
        "{s:#}"
    );
    assert_eq!(s["latency_ms"]["connect"]["count"], 3);

    // Paced slower than --duration allows: what was never started is said, not hidden.
    let out = run(bench("conn", broker.port(V311), V311).args([
        "-c",
        "50",
        "--connect-rate",
        "2",
        "--duration",
        "1s",
        "--json",
    ]));
    let s = summary(&out);
    let started = s["connected"].as_u64().unwrap() + s["connect_failed"].as_u64().unwrap();
    let reason =
        "not started: --duration ended first (raise --connect-rate, or lengthen --duration)";
    assert_eq!(s["errors"][reason].as_u64(), Some(50 - started), "{s:#}");

    let out = run(bench("conn", free_port(), V311).args(["-c", "2", "--json"]));
    let s = summary(&out);
    assert_eq!(
        (&s["connected"], &s["connect_failed"]),
        (&0.into(), &2.into()),
        "{s:#}"
    );
    let errors = s["errors"].as_object().unwrap();
    assert_eq!(errors.len(), 1, "{s:#}");
    assert_eq!(errors.values().next().unwrap(), 2);
    out.assert_code(3);
}

/// Ctrl-C ends a run without --duration: the clients disconnect, the summary is printed,
/// and the exit code is 130.
#[test]
fn interrupt_ends_the_run_with_a_summary() {
    let broker = Broker::start();
    let mut cmd = bench("conn", broker.port(V311), V311);
    cmd.args(["-c", "2"]);
    let mut live = Live::spawn(&mut cmd, false);
    live.wait_stderr("2/2 connected", 1, WAIT);
    signal(live.pid(), "INT");
    let out = live.wait(WAIT).0;
    out.assert_code(130);
    assert!(
        out.stdout_str()
            .starts_with("bench conn: 2 clients, 2 connected"),
        "{}",
        out.dump()
    );
}

#[test]
fn bad_input_is_one_line_with_the_fix() {
    let port = free_port();
    let cases: &[(&[&str], &[&str])] = &[
        (&["pub", "-s", "10"], &["-s 10", "24-byte header", "-s 24"]),
        (&["pub", "-c", "2", "-i", "same"], &["same id", "%i"]),
        (&["pub", "--rate", "fast"], &["not a rate"]),
        (&["sub", "-c", "0"], &["positive"]),
        (
            &["sub", "--read-pause", "1s"],
            &[
                "--read-pause 1s",
                "at most 10ms",
                "0 to read each packet at once",
            ],
        ),
        (&["pub", "--read-pause", "soon"], &["not a duration"]),
        (
            &["conn", "--client-offset", "4294967295", "-c", "2"],
            &["largest client index", "smaller offset"],
        ),
    ];
    for (args, keywords) in cases {
        run(bench(args[0], port, V311).args(&args[1..])).assert_error(2, keywords);
    }
    let dir = tempfile::tempdir().unwrap();
    let junk = write(dir.path(), "junk.json", b"{\"kind\": 1}");
    merge(&[], &[junk]).assert_error(2, &["junk.json", "not a `bench --json` summary"]);
    merge(&[], &["/nonexistent/a.json".into()])
        .assert_error(2, &["cannot read /nonexistent/a.json"]);
}

/// `sh -c 'ulimit ARGS; exec mqttcli bench conn ...'`: the open-files limit set for the run.
fn with_ulimit(ulimit: &str, port: u16, args: &[&str]) -> Out {
    let bin = env!("CARGO_BIN_EXE_mqttcli");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit {ulimit} && exec \"$0\" \"$@\""), bin])
        .args(["bench", "conn", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    for name in crate::common::NETWORK_ENV {
        cmd.env_remove(name);
    }
    run(&mut cmd)
}

/// A soft limit below what -c needs is raised to the hard limit; a hard limit below it is a
/// usage error before any connection is opened.
#[test]
fn the_open_files_limit_is_raised_or_the_run_refused() {
    let broker = Broker::start();
    let port = broker.port(V311);
    let out = with_ulimit("-Sn 64", port, &["-c", "80", "--duration", "1s", "--json"]);
    out.assert_code(0);
    assert_eq!(summary(&out)["connected"], 80, "{}", out.dump());
    with_ulimit("-n 64", port, &["-c", "80"]).assert_error(
        2,
        &[
            "-c 80 needs about 144 open files",
            "hard limit 64",
            "--client-offset",
        ],
    );
}

/// Each kind's --help: examples that run it, and the exit codes; -h is the host, as everywhere.
#[test]
fn help_of_each_kind_has_examples_and_the_exit_codes() {
    for kind in ["conn", "pub", "sub", "merge"] {
        let out = run(mqttcli().args(["bench", kind, "--help"]));
        out.assert_code(0);
        let text = out.stdout_str();
        assert!(text.contains("Exit codes:"), "{kind}:\n{text}");
        assert!(
            text.contains(&format!("  mqttcli bench {kind} ")),
            "{kind}:\n{text}"
        );
        if kind != "merge" {
            run(mqttcli().args(["bench", kind, "-h"])).assert_exact_error(
                2,
                "mqttcli: error: a value is required for '--host <HOST>' but none was supplied",
            );
        }
    }
}

/// `mqttcli bench KIND -h localhost -p PORT -V VERSION --ws --cafile CA`.
fn bench_wss(kind: &str, port: u16, proto: Proto, ca: &Path) -> Command {
    let mut cmd = mqttcli();
    cmd.args(["bench", kind, "-h", "localhost", "-p", &port.to_string()])
        .args(["-V", proto.arg(), "--ws", "--cafile"])
        .arg(ca);
    cmd
}

/// The connection flags of the other subcommands work for bench: WebSocket over TLS with a
/// private CA carries pub to sub; the wrong CA fails every client the TLS way (exit 7).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_and_sub_over_websocket_and_tls() {
    use crate::common::certs::Pki;
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let server = ca.server("server", &["localhost", "127.0.0.1"]);
    let listeners = [format!("protocol websockets\n{}", server.mosquitto_tls())];
    let broker = Broker::anonymous_with_listeners(&listeners);
    let port = broker.listener_port(0);
    let t = unique_topic();
    let mut cmd = bench_wss("sub", port, V5, &ca.cert);
    cmd.args(["-c", "2", "-q", "1", "-n", "30", "-t", &format!("{t}#")])
        .args(["--duration", "60s", "--json"]);
    let mut sub = Live::spawn(&mut cmd, false);
    sub.wait_stderr("clients subscribed", 1, WAIT);
    let out = run(bench_wss("pub", port, V5, &ca.cert).args([
        "-c",
        "3",
        "-n",
        "10",
        "-q",
        "1",
        "-t",
        &format!("{t}%i"),
        "--json",
    ]));
    out.assert_code(0);
    assert_eq!(summary(&out)["acked"], 30);
    let got = sub.wait(WAIT).0;
    got.assert_code(0);
    let s = summary(&got);
    assert_eq!(
        (&s["received"], &s["lost"]),
        (&60.into(), &0.into()),
        "{s:#}"
    );

    let other = pki.ca("other");
    let out = run(bench_wss("conn", port, V311, &other.cert).args(["-c", "2", "--json"]));
    let s = summary(&out);
    assert_eq!(s["connect_failed"], 2, "{s:#}");
    let reason = s["errors"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(reason.contains("not signed by a trusted CA"), "{reason}");
    out.assert_code(7);
}

/// A connection cut mid-stream by a relay: the publisher counts the lost connection and what
/// it never saw acknowledged (exit 3), and the subscriber received no more than was sent and
/// no less than was acknowledged.
#[test]
fn a_cut_connection_is_counted_with_what_it_left_unacknowledged() {
    use crate::common::cutproxy::CutProxy;
    let broker = Broker::start();
    let proxy = CutProxy::start(broker.port(V311));
    let t = unique_topic();
    let sub = bench_sub(&broker, V311, &["-q", "1", "-t", &format!("{t}#")]);
    let mut cmd = bench("pub", proxy.port(), V311);
    cmd.args(["-q", "1", "--rate", "200", "-t", &format!("{t}x"), "--json"]);
    let publisher = Live::spawn(&mut cmd, false);
    proxy.wait_until("20 PUBLISHes relayed", WAIT, |p| p.publishes_up() >= 20);
    proxy.cut();
    let out = publisher.wait(WAIT).0;
    let p = summary(&out);
    let (sent, acked) = (p["sent"].as_u64().unwrap(), p["acked"].as_u64().unwrap());
    assert!(acked >= 1 && acked <= sent, "{p:#}");
    assert_eq!(p["unacknowledged"].as_u64().unwrap(), sent - acked, "{p:#}");
    let errors = p["errors"].as_object().unwrap();
    assert_eq!(
        errors.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        1,
        "{p:#}"
    );
    out.assert_code(3);

    // Every acknowledged message is on its way to the subscriber; its progress line says
    // when it has them all.
    let mut sub = sub;
    sub.wait_for("the acknowledged messages", WAIT, |s| {
        s.stderr
            .lines()
            .any(|l| received_so_far(l).is_some_and(|n| n >= acked))
    });
    signal(sub.pid(), "INT");
    let got = sub.wait(WAIT).0;
    got.assert_code(130);
    let s = summary(&got);
    let received = s["received"].as_u64().unwrap();
    assert!(
        acked <= received && received <= sent,
        "acked {acked}, sent {sent}: {s:#}"
    );
    assert_eq!(
        (&s["lost"], &s["duplicates"]),
        (&0.into(), &0.into()),
        "{s:#}"
    );
}

/// The total of a `bench sub` progress line: `..., 120 received (40/s), ...`.
fn received_so_far(line: &str) -> Option<u64> {
    let before = line
        .split(" received (")
        .next()
        .filter(|b| b.len() < line.len())?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Coordinated omission, against a real stall: the broker is stopped for 600 ms in the middle
/// of a paced run (1000 messages/s). The in-flight window fills within 100 ms and the client
/// can send nothing more until the broker wakes; the messages due meanwhile go out late. Their
/// latency counts from when they were due, so about one message in six shows 100 ms or more
/// (measured from their late sends they would look fast, and the 90th percentile with them).
/// Only lower bounds are asserted: a slower machine makes the stall longer, never shorter.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn a_stall_shows_in_the_latency_of_messages_due_during_it() {
    let mut broker = Broker::anonymous_mosquitto();
    let t = unique_topic();
    let mut cmd = bench("pub", broker.port(V311), V311);
    cmd.args([
        "-q",
        "1",
        "--rate",
        "1000",
        "-n",
        "3000",
        "-t",
        &format!("{t}x"),
        "--json",
    ]);
    let mut publisher = Live::spawn(&mut cmd, false);
    publisher.wait_stderr("acked (", 1, WAIT);
    let pid = broker.pid();
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(600));
    signal(pid, "CONT");
    let out = publisher.wait(WAIT).0;
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!(s["acked"], 3000, "{s:#}");
    let publish = &s["latency_ms"]["publish"];
    assert!(publish["max"].as_f64().unwrap() >= 500.0, "{publish:#}");
    assert!(publish["p90"].as_f64().unwrap() >= 100.0, "{publish:#}");
}

/// A fake broker's stream to `bench sub -n COUNT --read-pause PAUSE`: `count` QoS 0 messages,
/// each with a header stamped as it is written and each written on its own, four at a time
/// about 100 µs apart: some 40 a millisecond, where the subscriber counts as busy from 16.
/// Returns the subscriber's summary.
fn stream_to_bench_sub(count: usize, pause: &str) -> Value {
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(move |c| {
        c.stream().set_nodelay(true).map_err(|e| e.to_string())?;
        c.expect_connect(V311)?;
        c.connack(V311, false)?;
        let subscribe = c.read()?;
        if subscribe.kind() != 0x80 {
            return Err(format!("expected SUBSCRIBE, got {:02x?}", subscribe.0));
        }
        let id = &subscribe.body()[..2];
        c.write(&packet(0x90, &[id[0], id[1], 0]))?;
        for seq in 0..count as u64 {
            let mut rest = vec![0, 1, b't'];
            rest.extend(header(1, seq));
            c.write(&packet(0x30, &rest))?;
            if seq % 4 == 3 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        c.until_disconnect()
    });
    let out = run_with_timeout(
        bench("sub", port, V311)
            .args(["-t", "t", "-n", &count.to_string()])
            .args([
                "--read-pause",
                pause,
                "--duration",
                "60s",
                "--json",
                "--quiet",
            ]),
        None,
        WAIT,
    );
    assert!(played.result(&out), "the subscriber did not disconnect");
    out.assert_code(0);
    summary(&out)
}

/// `--read-pause`: a busy subscriber waits that long before it reads again, and what arrived
/// meanwhile waits with it, which the latencies show. Read at once (`0`), nothing waits that
/// long; every message arrives either way.
#[test]
fn a_busy_subscriber_lets_messages_gather_for_read_pause() {
    const COUNT: usize = 3000;
    let paused = stream_to_bench_sub(COUNT, "10ms");
    let at_once = stream_to_bench_sub(COUNT, "0");
    for s in [&paused, &at_once] {
        assert_eq!(s["received"], COUNT as u64, "{s:#}");
        assert_eq!(s["lost"], 0, "{s:#}");
    }
    let p50 = |s: &Value| s["latency_ms"]["end_to_end"]["p50"].as_f64().unwrap();
    // Arrivals spread evenly over 10 ms pauses wait 5 ms at the median.
    assert!(
        p50(&paused) >= 2.0,
        "paused: p50 {} ms, read at once: p50 {} ms",
        p50(&paused),
        p50(&at_once)
    );
}

/// `bench pub` at QoS 1 as the broker sees it (a held connection's own encoding): MQTT 5
/// PUBLISHes with a property length of 0 and the header first, never more in flight than the
/// CONNACK's Receive Maximum of 3, packet ids 1 to 3 in turn, then a DISCONNECT. The fake
/// acknowledges only once 3 are in flight, so a fourth sent early would show.
#[test]
fn a_publisher_keeps_to_the_receive_maximum() {
    const COUNT: usize = 12;
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V5)?;
        // Receive Maximum (0x21) 3.
        c.connack_v5(false, &[0x21, 0, 3])?;
        let (mut ids, mut in_flight, mut most) = (Vec::new(), Vec::new(), 0);
        while ids.len() < COUNT {
            let p = c.read()?;
            if p.0[0] != 0x32 {
                return Err(format!("expected a QoS 1 PUBLISH, got {:02x?}", p.0));
            }
            let body = p.body();
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let (topic, rest) = body[2..].split_at(topic_len);
            let pkid = u16::from_be_bytes([rest[0], rest[1]]);
            let (properties, payload) = (rest[2], &rest[3..]);
            if topic != b"t/0" || properties != 0 || payload.len() != 40 || &payload[..4] != b"MQB1"
            {
                return Err(format!("unexpected PUBLISH {:02x?}", p.0));
            }
            ids.push(pkid);
            in_flight.push(pkid);
            most = most.max(in_flight.len());
            if in_flight.len() == 3 || ids.len() == COUNT {
                for id in in_flight.drain(..) {
                    c.write(&packet(0x40, &id.to_be_bytes()))?;
                }
            }
        }
        Ok((ids, most, c.until_disconnect()?))
    });
    let out = run_with_timeout(
        bench("pub", port, V5)
            .args(["-n", &COUNT.to_string(), "-q", "1", "-s", "40"])
            .args(["-t", "t/%i", "--json", "--quiet"]),
        None,
        WAIT,
    );
    let (ids, most, disconnected) = played.result(&out);
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!((&s["sent"], &s["acked"]), (&12.into(), &12.into()), "{s:#}");
    assert_eq!(ids, [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
    assert_eq!(most, 3);
    assert!(disconnected, "no DISCONNECT at the end");
}

/// A paced publisher with more than its keepalive between two messages pings in between,
/// as MQTT asks of a client with nothing else to send (`-k 1`, a message every 2.5 s).
#[test]
fn a_slow_publisher_pings_between_messages() {
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V311)?;
        c.connack(V311, false)?;
        let mut kinds = Vec::new();
        while kinds.iter().filter(|k| **k == 0x30).count() < 2 {
            let p = c.read()?;
            if p.kind() == 0xc0 {
                c.write(&[0xd0, 0])?;
            }
            kinds.push(p.kind());
        }
        Ok((kinds, c.until_disconnect()?))
    });
    let out = run_with_timeout(
        bench("pub", port, V311)
            .args(["-n", "2", "--rate", "0.4", "-k", "1", "-t", "t"])
            .args(["--json", "--quiet"]),
        None,
        WAIT,
    );
    let (kinds, disconnected) = played.result(&out);
    out.assert_code(0);
    assert_eq!(kinds.first(), Some(&0x30), "{kinds:02x?}");
    assert!(
        kinds.iter().filter(|k| **k == 0xc0).count() >= 2,
        "fewer than two PINGREQs in 2.5 s at -k 1: {kinds:02x?}"
    );
    assert!(disconnected, "no DISCONNECT at the end");
}

/// An unpaced QoS 1 publisher waits for a burst's worth of PUBACKs with its reads batched
/// (SO_RCVLOWAT). A broker that holds the first window's PUBACKs over two keepalives but
/// answers each ping must still have its PINGRESPs read: the connection is not taken for lost,
/// and the run completes once the PUBACKs come.
#[test]
fn a_publisher_waiting_for_pubacks_still_reads_each_pingresp() {
    const COUNT: usize = 200;
    fn pkid(p: &crate::common::fake::Packet) -> [u8; 2] {
        // 3.1.1 QoS 1 PUBLISH to "t": topic length, topic, packet id.
        [p.body()[3], p.body()[4]]
    }
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V311)?;
        c.connack(V311, false)?;
        let (mut held, mut pings) = (Vec::new(), 0);
        while pings < 2 {
            let p = c.read()?;
            match p.0[0] {
                0x32 => held.push(pkid(&p)),
                0xc0 => {
                    pings += 1;
                    c.write(&[0xd0, 0])?;
                }
                _ => return Err(format!("unexpected packet {:02x?}", p.0)),
            }
        }
        let window = held.len();
        for id in held {
            c.write(&packet(0x40, &id))?;
        }
        let mut acked = window;
        while acked < COUNT {
            let p = c.read()?;
            match p.0[0] {
                0x32 => {
                    c.write(&packet(0x40, &pkid(&p)))?;
                    acked += 1;
                }
                0xc0 => c.write(&[0xd0, 0])?,
                _ => return Err(format!("unexpected packet {:02x?}", p.0)),
            }
        }
        Ok((window, c.until_disconnect()?))
    });
    let out = run_with_timeout(
        bench("pub", port, V311)
            .args(["-n", &COUNT.to_string(), "-q", "1", "-k", "1", "-t", "t"])
            .args(["--json", "--quiet"]),
        None,
        WAIT,
    );
    let (window, disconnected) = played.result(&out);
    out.assert_code(0);
    let s = summary(&out);
    assert_eq!(
        (&s["sent"], &s["acked"]),
        (&200.into(), &200.into()),
        "{s:#}"
    );
    assert_eq!(window, 100, "the first window: -M's default");
    assert!(disconnected, "no DISCONNECT at the end");
}

/// A broker whose CONNACK takes packets of at most 64 bytes (MQTT 5 Maximum Packet Size):
/// `bench pub -s 100` sends it nothing too large, and says why in a Session's words, exit 5.
#[test]
fn a_publish_over_the_maximum_packet_size_is_refused_before_it_is_sent() {
    let fake = FakeBroker::bind();
    let port = fake.port();
    let played = fake.serve_one(|c| {
        c.expect_connect(V5)?;
        // Maximum Packet Size (0x27) 64.
        c.connack_v5(false, &[0x27, 0, 0, 0, 64])?;
        let mut kinds = Vec::new();
        while let Ok(p) = c.read() {
            kinds.push(p.kind());
            if p.kind() == 0xe0 {
                break;
            }
        }
        Ok(kinds)
    });
    let out = run_with_timeout(
        bench("pub", port, V5)
            .args(["-n", "3", "-q", "1", "-s", "100", "-t", "t"])
            .args(["--json", "--quiet"]),
        None,
        WAIT,
    );
    let kinds = played.result(&out);
    assert_eq!(kinds, [0xe0], "only a DISCONNECT: {kinds:02x?}");
    out.assert_code(5);
    let s = summary(&out);
    assert_eq!((&s["sent"], &s["acked"]), (&0.into(), &0.into()), "{s:#}");
    let errors = s["errors"].to_string();
    assert!(
        errors.contains("a packet of 108 bytes exceeds the limit of 64 bytes"),
        "{errors}"
    );
}
