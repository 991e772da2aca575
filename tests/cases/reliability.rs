//! Reliability against a real Mosquitto that the test stops, stalls (SIGSTOP), kills and
//! restarts on the same port, and through a relay that cuts connections on command
//! (tests/common/cutproxy.rs): reconnecting with backoff, persistent sessions across restarts,
//! `pub -l` resending what a lost connection dropped, giving up, and the exit codes that say
//! so. Every wait waits for an event (a stderr line, a message, bytes through the relay) with a
//! deadline; the reconnect delays are small so that nothing waits long.
//!
//! All of these need Mosquitto (a process to stop and restart); without it they are skipped
//! loudly, or fail under MQTTCLI_REQUIRE_MOSQUITTO=1.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::broker::free_port;
use crate::common::cutproxy::CutProxy;
use crate::common::fake::{Conn, FakeBroker};
use crate::common::live::Live;
use crate::common::lost::{
    count, in_order_apart_from_duplicates, interrupt_sub, lines_starting, pub_progress,
    publish_one, show, ERROR, RECONNECT, WAIT, WARNING,
};
use crate::common::{
    at, run, run_with_timeout, signal, subscriber, test_name, unique_id, unique_topic, Broker,
    Proto, Setup, DEADLINE,
};

fn anonymous() -> Setup<'static> {
    Setup {
        anonymous: true,
        ..Setup::default()
    }
}

/// Publish `lines` at QoS 1 with one `pub -l` straight to the broker on `port`.
#[track_caller]
fn publish_lines(port: u16, topic: &str, lines: &[String]) {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    run_with_timeout(
        at("pub", port, Proto::V311).args(["-t", topic, "-q", "1", "-l"]),
        Some(input.into_bytes()),
        DEADLINE,
    )
    .assert_ok(b"");
}

// ---------------------------------------------------------------------------------------------
// 1. Persistent session across broker restarts

/// A `sub -c -i ID -q 1` reaches the broker through the relay, which refuses it while the test
/// wants it away. Each round: 3 messages while it is connected; it loses the connection (odd
/// rounds: the broker stops under it; even rounds: the relay cuts it first and 3 more messages
/// are queued in its session before the broker stops, so they must survive the restart in
/// Mosquitto's persistence file); Mosquitto is stopped with SIGTERM (it saves its database)
/// and started again on the same port; 3 messages are queued while the subscriber is still
/// kept away; then it may reconnect and must resume its session. Every message must be
/// printed; QoS 1 allows duplicates, which are counted.
fn persistent_sub_survives_broker_restarts(proto: Proto, rounds: usize) {
    let mut broker = Broker::mosquitto(&Setup {
        anonymous: true,
        persistence: true,
        ..Setup::default()
    });
    let port = broker.port(proto);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "persist";
    let id = unique_id();
    let mut sub = subscriber(
        at("sub", relay.port(), proto)
            .args(["-t", &topic, "-q", "1", "-c", "-i", &id, "-W", "600"])
            .args(RECONNECT),
    );
    let mut expected: Vec<String> = Vec::new();
    let batch = |round: usize, what: &str| -> Vec<String> {
        (0..3)
            .map(|j| format!("round {round} {what} {j}"))
            .collect()
    };
    for round in 0..rounds {
        let live = batch(round, "connected");
        publish_lines(port, &topic, &live);
        expected.extend(live.iter().cloned());
        sub.wait_for(&format!("round {round}'s live messages"), WAIT, |s| {
            let lines = s.lines();
            live.iter().all(|m| lines.contains(m))
        });

        relay.set_accepting(false);
        if round % 2 == 0 {
            assert_eq!(
                relay.cut(),
                1,
                "round {round}: the subscriber was connected"
            );
            sub.wait_stderr("lost the connection", round + 1, WAIT);
            let queued = batch(round, "queued before the restart");
            publish_lines(port, &topic, &queued);
            expected.extend(queued);
        }
        broker.stop_process("TERM");
        sub.wait_stderr("lost the connection", round + 1, WAIT);
        broker.restart();
        let queued = batch(round, "queued after the restart");
        publish_lines(port, &topic, &queued);
        expected.extend(queued);
        relay.set_accepting(true);
        sub.wait_stderr("reconnected to", round + 1, WAIT);
    }
    sub.wait_for("every message", WAIT, |s| {
        let lines = s.lines();
        expected.iter().all(|m| lines.contains(m))
    });
    let out = interrupt_sub(sub);

    let lines: Vec<&str> = out.stderr.lines().collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let stdout = out.stdout_str();
    for line in stdout.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|m| !seen.contains_key(m.as_str()))
        .collect();
    let unexpected: Vec<&&str> = seen
        .keys()
        .filter(|l| !expected.iter().any(|m| m == **l))
        .collect();
    let total = stdout.lines().count();
    let duplicates = total - seen.len();
    let summary = format!(
        "{} messages published, {total} printed, {} distinct, {duplicates} duplicates, \
         {} missing: {missing:?}, unexpected: {unexpected:?}",
        expected.len(),
        seen.len(),
        missing.len()
    );
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{summary}\n{}",
        show(&out)
    );
    let resumed = lines
        .iter()
        .filter(|l| l.contains("reconnected to") && l.ends_with("(session resumed)"))
        .count();
    assert_eq!(
        (resumed, count(&out, "reconnected to")),
        (rounds, rounds),
        "every reconnect should resume the session\n{summary}\n{}",
        show(&out)
    );
    eprintln!("{}: {summary}", test_name());
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn persistent_sub_survives_ten_broker_restarts_without_losing_a_message() {
    persistent_sub_survives_broker_restarts(Proto::V311, 10);
}

/// MQTT 5 keeps the session by its expiry interval (never, with `-c` alone) instead of the
/// clean-session flag; a shorter run of the same.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn persistent_sub_survives_broker_restarts_v5() {
    persistent_sub_survives_broker_restarts(Proto::V5, 3);
}

// ---------------------------------------------------------------------------------------------
// 2. pub -l through cut connections

/// `n` lines (1, 2, …) at QoS 1 through the relay, which cuts the publisher's connection
/// `cuts` times while it streams (after `step`, 2 × `step`, … PUBACKs came back through it).
/// A subscriber connected straight to the broker must see every line, in order apart from
/// duplicates. Each duplicate is a message sent again after a reconnect, so there are at most
/// as many as `pub` reports having sent again.
fn pub_lines_through_cut_connections(proto: Proto, n: usize, cuts: usize, step: u64) {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(proto);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "lines";
    let mut sub =
        subscriber(at("sub", port, Proto::V311).args(["-t", &topic, "-q", "1", "-W", "600"]));
    let mut publisher = Live::spawn(
        at("pub", relay.port(), proto)
            .args(["-t", &topic, "-q", "1", "-l"])
            .args(RECONNECT)
            // Only mqttcli's own debug lines (-d would add one per PUBLISH): the last one
            // counts what was acknowledged and sent again.
            .env("RUST_LOG", "mqttcli=debug"),
        true,
    );
    let mut stdin = publisher.stdin();
    let feeder = std::thread::spawn(move || {
        let input: String = (1..=n).map(|i| format!("{i}\n")).collect();
        // Dropping stdin at the end is the end of input.
        stdin.write_all(input.as_bytes())
    });
    for cut in 1..=cuts {
        // A PUBACK is 4 bytes, as is a v3.1.1 CONNACK (a v5 PUBACK with reason "success" may
        // be 4 bytes too; a v5 CONNACK is longer): this comes a little early, if anything.
        let acks = cut as u64 * step;
        relay.wait_until(&format!("{acks} PUBACKs"), WAIT, |r| {
            r.bytes_down() >= 4 * acks
        });
        assert_eq!(
            relay.cut(),
            1,
            "cut {cut}: the publisher should have been connected"
        );
        publisher.wait_stderr("reconnected to", cut, WAIT);
    }
    let (out, _) = publisher.wait(Duration::from_secs(300));
    feeder
        .join()
        .expect("stdin feeder")
        .expect("write the lines to pub's stdin");
    out.assert_code(0).assert_stdout(b"");
    assert_eq!(
        (
            count(&out, "reconnecting in"),
            count(&out, "reconnected to"),
            lines_starting(&out, WARNING).len(),
            lines_starting(&out, ERROR).len()
        ),
        (cuts, cuts, 2 * cuts, 0),
        "one loss and one reconnect per cut, no other warning or error\n{}",
        show(&out)
    );
    let (acked, produced, sent_again) = pub_progress(&out);
    assert_eq!((acked, produced), (n as u64, n as u64), "{}", show(&out));

    // The broker acknowledged everything; a marker behind it shows the subscriber has it all.
    publish_one(port, &topic, "end");
    sub.wait_for("the end marker", Duration::from_secs(300), |s| {
        s.stdout.ends_with(b"\nend\n")
    });
    let sub_out = interrupt_sub(sub);
    let stdout = sub_out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, values) = lines.split_last().expect("the subscriber printed lines");
    assert_eq!(*last, "end");
    let duplicates = in_order_apart_from_duplicates(values, 1, n as u64)
        .unwrap_or_else(|e| panic!("{e}; pub sent {sent_again} again"));
    let summary = format!(
        "{} lines printed, {duplicates} duplicates, pub sent {sent_again} again after its {cuts} reconnects",
        values.len()
    );
    assert!(
        duplicates <= sent_again,
        "more duplicates than messages sent again: {summary}"
    );
    eprintln!("{}: {summary}", test_name());
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_100000_qos1_lines_in_order_through_five_cut_connections() {
    pub_lines_through_cut_connections(Proto::V311, 100_000, 5, 15_000);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_qos1_lines_in_order_through_cut_connections_v5() {
    pub_lines_through_cut_connections(Proto::V5, 20_000, 3, 4_000);
}

/// `pub --interval` also rides out a lost connection: the ticks produced meanwhile are sent
/// after the reconnect, and every tick it counted arrives, in order apart from duplicates.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_interval_rides_out_a_cut_connection() {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "ticks";
    let mut sub =
        subscriber(at("sub", port, Proto::V311).args(["-t", &topic, "-q", "1", "-W", "120"]));
    let mut publisher = Live::spawn(
        at("pub", relay.port(), Proto::V311)
            .args(["-t", &topic, "-q", "1", "-m", "{n}", "--interval", "50ms"])
            .args(RECONNECT)
            .env("RUST_LOG", "mqttcli=debug"),
        false,
    );
    sub.wait_lines(3, WAIT);
    assert_eq!(relay.cut(), 1, "the publisher was connected");
    publisher.wait_stderr("reconnected to", 1, WAIT);
    let after = sub.seen(|s| s.stdout_lines) + 3;
    sub.wait_lines(after, WAIT);
    signal(publisher.pid(), "INT");
    let (out, _) = publisher.wait(WAIT);
    out.assert_code(130).assert_stdout(b"");
    let (acked, produced, _) = pub_progress(&out);
    assert_eq!(acked, produced, "{}", show(&out));
    assert_eq!(
        (
            count(&out, "reconnecting in"),
            count(&out, "reconnected to")
        ),
        (1, 1),
        "{}",
        show(&out)
    );
    publish_one(port, &topic, "end");
    sub.wait_line("end", WAIT);
    let sub_out = interrupt_sub(sub);
    let stdout = sub_out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, values) = lines.split_last().expect("the subscriber printed lines");
    assert_eq!(*last, "end");
    let duplicates = in_order_apart_from_duplicates(values, 0, acked)
        .unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    eprintln!(
        "{}: {acked} ticks acknowledged, {duplicates} duplicates",
        test_name()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A stalled broker

/// SIGSTOP keeps Mosquitto's sockets open but it answers nothing: only keepalive can tell.
/// `sub -k 1` must notice, keep trying while it is stopped, reconnect after SIGCONT (a new
/// session: it subscribes again) and then get what is published.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn stalled_broker_is_noticed_by_keepalive_and_sub_recovers_after_it_resumes() {
    let mut broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let topic = unique_topic() + "stall";
    let mut sub = subscriber(
        at("sub", port, Proto::V311)
            .args([
                "-t",
                &topic,
                "-q",
                "1",
                "-k",
                "1",
                "--connect-timeout",
                "2s",
            ])
            .args(["-W", "120"])
            .args(RECONNECT),
    );
    let pid = broker.pid();
    signal(pid, "STOP");
    let stopped = Instant::now();
    sub.wait_for("the stall noticed", WAIT, |s| {
        s.stderr.contains("stopped answering pings") || s.stderr.contains("no answer")
    });
    let noticed = stopped.elapsed();
    signal(pid, "CONT");
    sub.wait_stderr("reconnected to", 1, WAIT);
    // A new session: it subscribes again.
    sub.wait_stderr("SUBACK", 2, WAIT);
    publish_one(port, &topic, "after the resume");
    sub.wait_line("after the resume", WAIT);
    let out = interrupt_sub(sub);
    out.assert_stdout(b"after the resume\n");
    let warnings = lines_starting(&out, WARNING);
    let lost = format!(
        "{WARNING}lost the connection to 127.0.0.1:{port}: the broker stopped answering pings; reconnecting in "
    );
    assert!(
        warnings.first().is_some_and(|w| w.starts_with(&lost)),
        "the first warning should be '{lost}…' (noticed after {noticed:?})\n{}",
        show(&out)
    );
    assert!(
        warnings.last().is_some_and(
            |w| *w == format!("{WARNING}reconnected to 127.0.0.1:{port} (new session)")
        ),
        "{}",
        show(&out)
    );
    assert_eq!(count(&out, "reconnected to"), 1, "{}", show(&out));
    // Pings every second, and the missing answer is seen at the next one: about 2 s.
    assert!(
        noticed < Duration::from_secs(8),
        "the stall took {noticed:?} to notice with -k 1\n{}",
        show(&out)
    );
    eprintln!("{}: the stall was noticed after {noticed:?}", test_name());
}

/// `-C` counts messages across reconnects: two before a cut, two after (the broker kept no
/// session, so `sub` subscribes again), then it exits 0.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sub_count_spans_a_reconnect() {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "count";
    let mut sub = subscriber(
        at("sub", relay.port(), Proto::V311)
            .args(["-t", &topic, "-q", "1", "-C", "4", "-W", "120"])
            .args(RECONNECT),
    );
    publish_lines(port, &topic, &["one".into(), "two".into()]);
    sub.wait_lines(2, WAIT);
    assert_eq!(relay.cut(), 1, "the subscriber was connected");
    sub.wait_stderr("reconnected to", 1, WAIT);
    sub.wait_stderr("SUBACK", 2, WAIT);
    publish_lines(port, &topic, &["three".into(), "four".into()]);
    let (out, _) = sub.wait(WAIT);
    out.assert_ok(b"one\ntwo\nthree\nfour\n");
    assert!(
        out.stderr.contains(&format!(
            "{WARNING}reconnected to 127.0.0.1:{} (new session)",
            relay.port()
        )),
        "{}",
        show(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A refused CONNACK is final

/// Wrong credentials are not a network problem: `sub` and `pub -l` (which both reconnect by
/// default) exit 4 at once, without a `reconnecting` line, after a single attempt.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn refused_credentials_are_not_retried() {
    let users = [("u", "right")];
    let mut broker = Broker::mosquitto(&Setup {
        users: &users,
        ..Setup::default()
    });
    let port = broker.port(Proto::V311);
    let topic = unique_topic() + "auth";
    for (i, subcommand) in ["sub", "pub"].into_iter().enumerate() {
        let mut cmd = at(subcommand, port, Proto::V311);
        cmd.args(["-t", &topic, "-u", "u", "-P", "wrong"])
            .args(["--reconnect-delay", "60s"]);
        let input = if subcommand == "sub" {
            cmd.args(["-W", "60"]);
            None
        } else {
            cmd.args(["-q", "1", "-l"]);
            Some(b"one\ntwo\n".to_vec())
        };
        let start = Instant::now();
        let out = run_with_timeout(&mut cmd, input, DEADLINE);
        let took = start.elapsed();
        out.assert_error(4, &["refused the connection", "not authorised"]);
        // A second attempt could not come before 30 s (60 s with jitter down to half).
        assert!(
            took < Duration::from_secs(20),
            "{subcommand} took {took:?} to give up\n{}",
            show(&out)
        );
        // Mosquitto logs each refusal as it closes the connection, just after the CONNACK.
        let end = Instant::now() + WAIT;
        let refusals = loop {
            let n = broker
                .log_text()
                .matches("disconnected, not authorised")
                .count();
            if n > i || Instant::now() > end {
                break n;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(
            refusals,
            i + 1,
            "one attempt per run; broker log:\n{}",
            broker.log_text()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A single pub fails fast

/// A single `pub -m` does not reconnect, even with reconnect flags given: against a closed port
/// it fails at once with exit 3 and one line.
#[test]
fn single_pub_against_a_closed_port_exits_3_at_once() {
    let port = free_port();
    let start = Instant::now();
    let out = run(at("pub", port, Proto::V311)
        .args([
            "-t",
            "x",
            "-q",
            "1",
            "-m",
            "hello",
            "--connect-timeout",
            "5s",
        ])
        .args(RECONNECT));
    let took = start.elapsed();
    out.assert_error(
        3,
        &[
            &format!("cannot connect to 127.0.0.1:{port}"),
            "connection refused",
        ],
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}\n{}",
        show(&out)
    );
}

/// Against a broker that accepts TCP but never answers (stopped), a single `pub -m` gives up
/// after --connect-timeout with exit 3, once.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn single_pub_against_a_stalled_broker_exits_3_after_the_connect_timeout() {
    let mut broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let pid = broker.pid();
    signal(pid, "STOP");
    let start = Instant::now();
    let out = run(at("pub", port, Proto::V311)
        .args([
            "-t",
            "x",
            "-q",
            "1",
            "-m",
            "hello",
            "--connect-timeout",
            "1s",
        ])
        .args(RECONNECT));
    let took = start.elapsed();
    signal(pid, "CONT");
    out.assert_error(3, &[&format!("no answer from 127.0.0.1:{port}")]);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "took {took:?}\n{}",
        show(&out)
    );
}

/// A fake broker's script: answer the CONNECT with a CONNACK and close the connection as soon
/// as the client sends its next packet, as a broker that dies mid-way.
fn die_after_connack(conn: &mut Conn) {
    let Ok(connect) = conn.read() else {
        return;
    };
    // CONNECT: "MQTT" with its length, level, flags.
    if connect.kind() != 0x10 || connect.body().len() < 8 {
        return;
    }
    let clean_session = connect.body()[7] & 0x02 != 0;
    // Accepted; a session is "present" when the client asked to keep one (`unsub`).
    if conn.connack(Proto::V311, !clean_session).is_err() {
        return;
    }
    // The next packet (PUBLISH, UNSUBSCRIBE, …) is read whole, so closing sends a FIN.
    let _ = conn.read();
}

/// `pub -m -q 1` and `unsub`, whose broker closes the connection after CONNACK: exit 3 after
/// the one connection, no reconnect.
#[test]
fn single_pub_and_unsub_do_not_reconnect_when_the_broker_dies_mid_way() {
    for subcommand in ["pub", "unsub"] {
        let broker = FakeBroker::bind().serve_all(die_after_connack);
        let mut cmd = at(subcommand, broker.port, Proto::V311);
        cmd.args(["-t", "x"]).args(RECONNECT);
        if subcommand == "pub" {
            cmd.args(["-q", "1", "-m", "hello"]);
        } else {
            cmd.args(["-i", &unique_id()]);
        }
        let out = run(&mut cmd);
        out.assert_error(
            3,
            &[&format!("lost the connection to 127.0.0.1:{}", broker.port)],
        );
        if subcommand == "pub" {
            assert!(
                out.stderr.contains("0 of 1 messages acknowledged"),
                "{}",
                show(&out)
            );
        }
        assert_eq!(
            broker.connections(),
            1,
            "{subcommand} connected more than once\n{}",
            show(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Signals for streaming publishers

/// A `pub --interval 100ms` of `tick {n}` at QoS 1 with a will, its debug lines on stderr,
/// and a subscriber to each of its topics.
struct WillRun {
    watcher: Live,
    sub: Live,
    publisher: Live,
    data: String,
    will: String,
}

fn interval_pub_with_will(port: u16) -> WillRun {
    let base = unique_topic();
    let (data, will) = (base.clone() + "data", base + "will");
    let watcher =
        subscriber(at("sub", port, Proto::V311).args(["-t", &will, "-q", "1", "-W", "120"]));
    let sub = subscriber(at("sub", port, Proto::V311).args(["-t", &data, "-q", "1", "-W", "120"]));
    let publisher = Live::spawn(
        at("pub", port, Proto::V311)
            .args([
                "-t",
                &data,
                "-q",
                "1",
                "-m",
                "tick {n}",
                "--interval",
                "100ms",
            ])
            .args(["--will-topic", &will, "--will-payload", "will fired"])
            .args(["--will-qos", "1"])
            .env("RUST_LOG", "mqttcli=debug"),
        false,
    );
    WillRun {
        watcher,
        sub,
        publisher,
        data,
        will,
    }
}

/// `pub --interval` with a will, ended by `sig`: exit 130, every message it counted as
/// published is delivered (exactly those), and the will is not published.
fn interval_pub_ends_cleanly_on(sig: &str) {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let WillRun {
        mut watcher,
        mut sub,
        publisher,
        data,
        will,
    } = interval_pub_with_will(port);
    sub.wait_lines(3, WAIT);
    signal(publisher.pid(), sig);
    let (out, _) = publisher.wait(WAIT);
    out.assert_code(130).assert_stdout(b"");
    assert!(
        lines_starting(&out, WARNING).is_empty() && lines_starting(&out, ERROR).is_empty(),
        "{}",
        show(&out)
    );
    let (acked, produced, again) = pub_progress(&out);
    assert!(
        acked == produced && again == 0 && acked >= 3,
        "{}",
        show(&out)
    );

    publish_one(port, &data, "end");
    sub.wait_line("end", WAIT);
    let expected: String = (0..acked)
        .map(|n| format!("tick {n}\n"))
        .chain(["end\n".to_string()])
        .collect();
    interrupt_sub(sub).assert_stdout(expected.as_bytes());
    // Had the broker published the will, it would come before the marker.
    publish_one(port, &will, "marker");
    watcher.wait_line("marker", WAIT);
    interrupt_sub(watcher).assert_stdout(b"marker\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sigint_ends_pub_interval_with_130_all_delivered_no_will() {
    interval_pub_ends_cleanly_on("INT");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sigterm_ends_pub_interval_with_130_all_delivered_no_will() {
    interval_pub_ends_cleanly_on("TERM");
}

/// The control experiment for the two above: killed with SIGKILL, `pub` cannot disconnect,
/// and the broker publishes its will.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sigkill_of_pub_interval_lets_the_broker_publish_the_will() {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let WillRun {
        mut watcher,
        mut sub,
        publisher,
        ..
    } = interval_pub_with_will(port);
    sub.wait_lines(1, WAIT);
    signal(publisher.pid(), "KILL");
    let (out, _) = publisher.wait(WAIT);
    assert_eq!(out.code, None, "killed by a signal\n{}", show(&out));
    watcher.wait_line("will fired", WAIT);
    interrupt_sub(watcher).assert_stdout(b"will fired\n");
}

/// `pub -l` reading a pipe that stays open (`tail -f … | mqttcli pub -l`): a signal ends it at
/// once with 130 (nothing is outstanding, so no drain), not whenever input would end.
fn open_pipe_pub_ends_promptly_on(sig: &str) {
    let broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let topic = unique_topic() + "pipe";
    let mut sub =
        subscriber(at("sub", port, Proto::V311).args(["-t", &topic, "-q", "1", "-W", "120"]));
    let mut publisher = Live::spawn(
        at("pub", port, Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l"])
            .args(RECONNECT),
        true,
    );
    let mut stdin = publisher.stdin();
    stdin.write_all(b"one\ntwo\n").expect("write to pub");
    sub.wait_lines(2, WAIT);
    let signalled = Instant::now();
    signal(publisher.pid(), sig);
    // Nothing is outstanding, so there is no drain: anything near 10 s is a hang.
    while publisher.try_wait().is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "pub -l still running 10 s after SIG{sig}, with nothing outstanding and its stdin \
             pipe open; stderr so far:\n{}",
            publisher.seen(|s| s.stderr.clone())
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (out, exited) = publisher.wait(WAIT);
    let took = exited - signalled;
    drop(stdin);
    out.assert_code(130).assert_stdout(b"");
    assert_eq!(out.stderr, "", "{}", show(&out));
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to end after SIG{sig}"
    );
    interrupt_sub(sub).assert_stdout(b"one\ntwo\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sigint_ends_pub_lines_on_an_open_pipe_promptly() {
    open_pipe_pub_ends_promptly_on("INT");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sigterm_ends_pub_lines_on_an_open_pipe_promptly() {
    open_pipe_pub_ends_promptly_on("TERM");
}

/// The first SIGINT makes `pub` wait (up to 5 s) for an acknowledgement that cannot come (the
/// broker is stopped); a second SIGINT ends it at once, with 130.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn second_sigint_during_the_drain_exits_at_once() {
    let mut broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "drain";
    let mut sub =
        subscriber(at("sub", port, Proto::V311).args(["-t", &topic, "-q", "1", "-W", "120"]));
    let mut publisher = Live::spawn(
        at("pub", relay.port(), Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l"])
            .args(RECONNECT),
        true,
    );
    let mut stdin = publisher.stdin();
    stdin.write_all(b"one\n").expect("write to pub");
    sub.wait_line("one", WAIT);
    let pid = broker.pid();
    signal(pid, "STOP");
    // The relay sees the PUBLISH of "two" go by: it is outstanding.
    let before = relay.bytes_up();
    stdin.write_all(b"two\n").expect("write to pub");
    relay.wait_until("the PUBLISH of 'two'", WAIT, |r| r.bytes_up() > before);

    let first = Instant::now();
    signal(publisher.pid(), "INT");
    // Draining: still running a second later.
    while first.elapsed() < Duration::from_secs(1) {
        if let Some(status) = publisher.try_wait() {
            signal(pid, "CONT");
            panic!(
                "pub ended {:?} after the first SIGINT ({status}) although 'two' was never \
                 acknowledged: it should wait up to 5 s",
                first.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = Instant::now();
    signal(publisher.pid(), "INT");
    let (out, exited) = publisher.wait(WAIT);
    signal(pid, "CONT");
    drop(stdin);
    out.assert_code(130).assert_stdout(b"");
    let (after_second, after_first) = (exited - second, exited - first);
    assert!(
        // The drain alone would last 5 s after the first: under 4.5 s, the second cut it short.
        after_second < Duration::from_secs(3) && after_first < Duration::from_millis(4500),
        "ended {after_second:?} after the second SIGINT, {after_first:?} after the first\n{}",
        show(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Giving up

/// With the broker gone for good, `sub --reconnect-attempts 2` makes exactly two attempts:
/// one warning for the loss and one for the first failed attempt (each announcing the next),
/// then an error that says it gave up, exit 3. `--quiet` leaves only the error;
/// `--no-reconnect` makes no attempt at all.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn sub_gives_up_after_the_reconnect_attempts_with_exit_3() {
    let mut broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let topic = unique_topic() + "gone";
    let cmd = |extra: &[&str]| {
        let mut cmd = at("sub", port, Proto::V311);
        cmd.args(["-t", &topic, "-W", "120", "--reconnect-attempts", "2"])
            .args(RECONNECT)
            .args(extra);
        cmd
    };
    let sub = subscriber(&mut cmd(&[]));
    let once = subscriber(at("sub", port, Proto::V311).args([
        "-t",
        &topic,
        "-W",
        "120",
        "--no-reconnect",
    ]));
    // Without -d there is no SUBACK line: the broker's log shows when it is connected.
    let quiet_id = unique_id();
    let quiet = Live::spawn(&mut cmd(&["--quiet", "-i", &quiet_id]), false);
    let end = Instant::now() + WAIT;
    while !broker.log_text().contains(&format!(" as {quiet_id} ")) {
        assert!(Instant::now() < end, "{quiet_id} did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.stop_process("KILL");

    let (out, _) = sub.wait(WAIT);
    out.assert_code(3).assert_stdout(b"");
    let warnings = lines_starting(&out, WARNING);
    let errors = lines_starting(&out, ERROR);
    let endpoint = format!("127.0.0.1:{port}");
    assert!(
        warnings.len() == 2
            && warnings[0].starts_with(&format!("{WARNING}lost the connection to {endpoint}: "))
            && warnings[1].starts_with(&format!(
                "{WARNING}cannot connect to {endpoint}: connection refused"
            ))
            && warnings.iter().all(|w| w.contains("; reconnecting in ")),
        "two warnings: the loss, then one failed attempt\n{}",
        show(&out)
    );
    assert!(
        errors.len() == 1
            && errors[0].starts_with(&format!(
                "{ERROR}gave up after 2 reconnect attempts: cannot connect to {endpoint}: connection refused"
            )),
        "{}",
        show(&out)
    );

    let (quiet_out, _) = quiet.wait(WAIT);
    quiet_out.assert_error(
        3,
        &["gave up after 2 reconnect attempts", "connection refused"],
    );

    let (once_out, _) = once.wait(WAIT);
    once_out.assert_code(3).assert_stdout(b"");
    let errors = lines_starting(&once_out, ERROR);
    assert!(
        lines_starting(&once_out, WARNING).is_empty()
            && errors.len() == 1
            && errors[0].starts_with(&format!("{ERROR}lost the connection to {endpoint}: ")),
        "--no-reconnect: one error for the loss, no attempt\n{}",
        show(&once_out)
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Exit code truth

/// `pub -l` of 4 000 QoS 1 lines whose broker is killed after the first 2 000 were
/// acknowledged and never comes back: after its 3 attempts it exits 3 (not 0), soon after its
/// input ends, saying how many were acknowledged.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_exits_3_reporting_the_acknowledged_count_when_the_broker_is_gone() {
    let mut broker = Broker::mosquitto(&anonymous());
    let port = broker.port(Proto::V311);
    let mut relay = CutProxy::start(port);
    let topic = unique_topic() + "truth";
    let mut publisher = Live::spawn(
        at("pub", relay.port(), Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l", "--reconnect-attempts", "3"])
            .args(RECONNECT),
        true,
    );
    let mut stdin = publisher.stdin();
    let half = |range: std::ops::RangeInclusive<u32>| -> String {
        range.map(|i| format!("line {i}\n")).collect()
    };
    stdin
        .write_all(half(1..=2000).as_bytes())
        .expect("write to pub");
    // CONNACK and 2 000 PUBACKs, 4 bytes each, are through the relay.
    relay.wait_until("2 000 PUBACKs", WAIT, |r| r.bytes_down() >= 4 + 2000 * 4);
    assert_eq!(relay.bytes_down(), 4 + 2000 * 4);
    relay.set_accepting(false);
    broker.stop_process("KILL");
    relay.close();
    // pub may already have given up and closed its end: ignore a failed write.
    let _ = stdin.write_all(half(2001..=4000).as_bytes());
    drop(stdin);
    let input_ended = Instant::now();
    let (out, exited) = publisher.wait(WAIT);
    out.assert_code(3).assert_stdout(b"");
    let warnings = lines_starting(&out, WARNING);
    let errors = lines_starting(&out, ERROR);
    assert!(
        warnings.len() == 3
            && warnings.iter().all(|w| w.contains("; reconnecting in "))
            && out.stderr.lines().count() == 4,
        "three warnings (the loss, two failed attempts) and the error\n{}",
        show(&out)
    );
    assert!(
        errors.len() == 1
            && (errors[0].starts_with(&format!("{ERROR}2000 messages acknowledged: "))
                || errors[0].starts_with(&format!("{ERROR}2000 of 4000 messages acknowledged: ")))
            && errors[0].contains("gave up after 3 reconnect attempts"),
        "{}",
        show(&out)
    );
    let took = exited.saturating_duration_since(input_ended);
    assert!(
        took < Duration::from_secs(10),
        "ended {took:?} after its input did\n{}",
        show(&out)
    );
}
