//! The delivery promise, seen from the broker's side as well as the subscriber's: DUP on a
//! resumed session's re-deliveries (Mosquitto's `log_type all` logs every PUBLISH it receives
//! with its DUP flag), QoS 2 through cut connections, back-pressure on stdin while the broker
//! is stalled, and no hang when the broker goes away for good after stdin ended.
//!
//! Every wait waits for an event (a stderr line, a message, bytes through the relay, progress
//! of a writer) with a deadline. All of these need Mosquitto; without it they are skipped
//! loudly, or fail under MQTTCLI_REQUIRE_MOSQUITTO=1.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::cutproxy::CutProxy;
use crate::common::live::Live;
use crate::common::lost::{
    count, in_order_apart_from_duplicates, interrupt_sub, lines_starting, pub_progress,
    publish_one, show, ERROR, RECONNECT, WAIT, WARNING,
};
use crate::common::{
    at, run_with_timeout, signal, subscriber, test_name, unique_id, unique_topic, Broker, Out,
    Proto, Setup, DEADLINE,
};

fn setup(extra: &'static [&'static str]) -> Setup<'static> {
    Setup {
        anonymous: true,
        extra,
        ..Setup::default()
    }
}

/// Resumes a stopped (SIGSTOP) process when dropped, so that a failing test does not leave a
/// broker stopped under its other clients.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT {} 2>/dev/null", self.0)])
            .status();
    }
}

/// `n` lines, `cuts` cuts, one after every `step` acknowledgements; `hold` and `slow_acks`:
/// see `stream_through_cuts`.
struct Cuts {
    n: usize,
    cuts: usize,
    step: u64,
    hold: bool,
    slow_acks: bool,
}

/// What a stream through cut connections left behind.
struct Streamed {
    /// The publisher's output.
    out: Out,
    /// The subscriber's lines before the end marker.
    lines: Vec<String>,
    /// Length of the broker's log just before each cut.
    log_at_cut: Vec<usize>,
}

/// How long the broker's first acknowledgements take to reach pub after a resume, with
/// `slow_acks`: a slow path, not a wait for something to happen.
const SLOW_ACKS: Duration = Duration::from_millis(200);

/// `n` lines (1, 2, …) at `qos` with `pub -l` (and `pub_args`) through a relay that cuts its
/// connection `cuts` times while it streams (after about `step`, 2 × `step`, … acknowledgements
/// came back through it); a subscriber at `qos` straight on the broker. With `hold`, the relay
/// stops forwarding to the broker before each cut and the acknowledgements are let settle, so
/// that pub's whole in-flight window is PUBLISHes the broker never got. With `slow_acks`, the
/// relay holds back the broker's acknowledgements on the new connection (after its CONNACK)
/// until the broker got every PUBLISH pub said it sends again and for SLOW_ACKS more, as a
/// slow path would: pub must
/// not send more than its in-flight window meanwhile. Checks that `pub` exits
/// 0 after one loss and one reconnect per cut, having acknowledged all `n`; returns what the
/// subscriber printed once an end marker published behind the stream has reached it.
fn stream_through_cuts(
    broker: &mut Broker,
    proto: Proto,
    qos: u8,
    pub_args: &[&str],
    Cuts {
        n,
        cuts,
        step,
        hold,
        slow_acks,
    }: Cuts,
) -> Streamed {
    let port = broker.port(proto);
    let relay = CutProxy::start(port);
    let topic = unique_topic() + "lines";
    let q = qos.to_string();
    let mut sub = subscriber(at("sub", port, proto).args(["-t", &topic, "-q", &q, "-W", "600"]));
    let mut publisher = Live::spawn(
        at("pub", relay.port(), proto)
            .args(["-t", &topic, "-q", &q, "-l"])
            .args(pub_args)
            .args(RECONNECT)
            // Only mqttcli's own debug lines (-d would add one per PUBLISH): the last one
            // counts what was acknowledged and sent again.
            .env("RUST_LOG", "mqttcli=debug"),
        true,
    );
    let mut stdin = publisher.stdin();
    let feeder = std::thread::spawn(move || {
        let input: String = (1..=n).map(|i| format!("{i}\n")).collect();
        stdin.write_all(input.as_bytes())
    });
    // A PUBACK, PUBREC and PUBCOMP are 4 bytes each (also under v5 when the reason is success
    // and there are no properties): one message is 4 bytes down at QoS 1, 8 at QoS 2.
    let per_message = if qos == 2 { 8 } else { 4 };
    let mut log_at_cut = Vec::new();
    for cut in 1..=cuts {
        let acks = cut as u64 * step;
        relay.wait_until(&format!("{acks} acknowledgements"), WAIT, |r| {
            r.bytes_down() >= per_message * acks
        });
        if hold {
            relay.hold_up(true);
            // Every PUBLISH the broker got before the hold is acknowledged: pub's in-flight
            // window is now only PUBLISHes the broker never got.
            relay.wait_until("the acknowledgement of every PUBLISH relayed", WAIT, |r| {
                r.held_and_acknowledged()
            });
        }
        log_at_cut.push(broker.log_text().len());
        relay.hold_acks_of_new_connections(slow_acks);
        let cut_now = relay.cut();
        relay.hold_up(false);
        assert_eq!(
            cut_now, 1,
            "cut {cut}: the publisher should have been connected (did it finish already?)"
        );
        publisher.wait_stderr("reconnected to", cut, WAIT);
        if slow_acks {
            // pub's debug line: "N unacknowledged PUBLISH/PUBREL to send again, …".
            let stderr = publisher.seen(|s| s.stderr.clone());
            let replays: u64 = stderr
                .lines()
                .filter_map(|l| {
                    l.split(" unacknowledged PUBLISH/PUBREL")
                        .next()?
                        .rsplit(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .nth(cut - 1)
                .unwrap_or_else(|| panic!("cut {cut}: how many replays?\n{stderr}"));
            relay.wait_until(&format!("the {replays} replays"), WAIT, |r| {
                r.publishes_up() >= replays
            });
            // The slow path: their acknowledgements take another SLOW_ACKS to come back.
            // (rumqttc takes about 1 ms for each request in its pending queue.)
            std::thread::sleep(SLOW_ACKS);
            relay.hold_acks_of_new_connections(false);
        }
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
    let (acked, produced, _) = pub_progress(&out);
    assert_eq!((acked, produced), (n as u64, n as u64), "{}", show(&out));

    // The broker acknowledged everything; a marker behind it shows the subscriber has it all.
    publish_one(port, &topic, "end");
    sub.wait_for("the end marker", Duration::from_secs(300), |s| {
        s.stdout.ends_with(b"\nend\n")
    });
    let sub_out = interrupt_sub(sub);
    let mut lines: Vec<String> = sub_out.stdout_str().lines().map(String::from).collect();
    assert_eq!(lines.pop().as_deref(), Some("end"));
    Streamed {
        out,
        lines,
        log_at_cut,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. DUP on re-delivery

/// Mosquitto's `log_type all` line for a PUBLISH received from `id` with DUP set:
/// `Received PUBLISH from ID (d1, q1, r0, m5, 'topic', ... (N bytes))`.
fn dup_publish(id: &str) -> String {
    format!("Received PUBLISH from {id} (d1, ")
}

/// `pub -c -i ID -q 1 -l` of 10 000 lines through cut connections: every reconnect resumes the
/// session, rumqttc sends the unacknowledged PUBLISHes again with their packet ids, and each
/// must carry DUP [MQTT-3.3.1-1]. The broker logs DUP for no PUBLISH before the first cut and
/// for at least one after it; every duplicate the subscriber sees is one of those re-deliveries,
/// so there are no more duplicates than DUP PUBLISHes; every line arrives in order apart from
/// duplicates (re-sent PUBLISHes go in the order they were first sent [MQTT-4.6.0-1]). The relay
/// holds back what pub sends before each cut, so its whole in-flight window is re-sent.
fn resumed_session_redelivers_with_dup(proto: Proto, slow_acks: bool) {
    let mut broker = Broker::mosquitto(&setup(&["log_type all"]));
    let id = unique_id();
    let (n, cuts) = (10_000, 2);
    let s = stream_through_cuts(
        &mut broker,
        proto,
        1,
        &["-c", "-i", &id],
        Cuts {
            n,
            cuts,
            step: 3_000,
            hold: true,
            slow_acks,
        },
    );
    let resumed = count(&s.out, "(session resumed)");
    assert_eq!(
        resumed,
        cuts,
        "every reconnect should resume the session\n{}",
        show(&s.out)
    );
    let values: Vec<&str> = s.lines.iter().map(String::as_str).collect();
    let duplicates = in_order_apart_from_duplicates(&values, 1, n as u64)
        .unwrap_or_else(|e| panic!("{e}\n{}", show(&s.out)));

    let log = broker.log_text();
    let dup = dup_publish(&id);
    let received = format!("Received PUBLISH from {id} (");
    let first_cut = s.log_at_cut[0];
    let before = &log[..first_cut];
    assert!(
        before.matches(&received).count() > 0,
        "the broker's log does not show the PUBLISHes it received from {id} (log_type all?)"
    );
    let dup_before = before.matches(&dup).count();
    let dup_after = log[first_cut..].matches(&dup).count();
    let summary = format!(
        "{} lines printed, {duplicates} duplicates; DUP PUBLISHes logged: {dup_before} before the \
         first cut, {dup_after} after it; {} PUBLISHes received from {id} in all",
        values.len(),
        log.matches(&received).count()
    );
    assert_eq!(
        dup_before, 0,
        "no PUBLISH is a re-delivery before the first cut: {summary}"
    );
    assert!(
        dup_after >= 1,
        "the re-deliveries after resuming the session must carry DUP: {summary}\n{}",
        show(&s.out)
    );
    assert!(
        duplicates <= dup_after as u64,
        "a duplicate that was not sent with DUP: {summary}"
    );
    eprintln!("{}: {summary}", test_name());
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn resumed_session_redelivers_unacknowledged_publishes_with_dup() {
    resumed_session_redelivers_with_dup(Proto::V311, false);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn resumed_session_redelivers_unacknowledged_publishes_with_dup_v5() {
    resumed_session_redelivers_with_dup(Proto::V5, false);
}

/// The same with the broker's acknowledgements slow after each resume: pub's request queue
/// held more than its in-flight window when the connection broke, and rumqttc sends what was
/// queued in it right behind the replays, before any acknowledgement, unless mqttcli keeps
/// the queue within the window. Beyond it each new PUBLISH takes the id of a replay still in
/// flight, and rumqttc keeps only the last of those it holds back: lost messages, and a pub
/// that waits for ever for their acknowledgements.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn resumed_session_sends_nothing_beyond_the_window_while_acknowledgements_are_slow() {
    resumed_session_redelivers_with_dup(Proto::V311, true);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn resumed_session_sends_nothing_beyond_the_window_while_acknowledgements_are_slow_v5() {
    resumed_session_redelivers_with_dup(Proto::V5, true);
}

/// Without a session (no `-c`) the broker forgets the unacknowledged PUBLISHes with the
/// connection; mqttcli sends them again as new PUBLISHes (DUP clear) after the reconnect. Every line arrives in order apart from duplicates, no PUBLISH from it is logged
/// with DUP, and it did send some again.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn new_session_sends_unacknowledged_publishes_again_as_new_ones() {
    let mut broker = Broker::mosquitto(&setup(&["log_type all"]));
    let id = unique_id();
    let (n, cuts) = (10_000, 2);
    let s = stream_through_cuts(
        &mut broker,
        Proto::V311,
        1,
        &["-i", &id],
        Cuts {
            n,
            cuts,
            step: 3_000,
            hold: true,
            slow_acks: false,
        },
    );
    assert_eq!(
        count(&s.out, "(new session)"),
        cuts,
        "without -c every reconnect is a new session\n{}",
        show(&s.out)
    );
    let (_, _, sent_again) = pub_progress(&s.out);
    let values: Vec<&str> = s.lines.iter().map(String::as_str).collect();
    let duplicates = in_order_apart_from_duplicates(&values, 1, n as u64)
        .unwrap_or_else(|e| panic!("{e}; pub sent {sent_again} again\n{}", show(&s.out)));
    let log = broker.log_text();
    let received = log
        .matches(&format!("Received PUBLISH from {id} ("))
        .count();
    let dups = log.matches(&dup_publish(&id)).count();
    let summary = format!(
        "{} lines printed, {duplicates} duplicates, pub sent {sent_again} again; the broker \
         received {received} PUBLISHes from {id}, {dups} with DUP",
        values.len()
    );
    assert!(
        sent_again > 0,
        "messages were outstanding at each cut, so some must have been sent again: {summary}"
    );
    assert!(
        duplicates <= sent_again,
        "more duplicates than messages sent again: {summary}"
    );
    assert_eq!(dups, 0, "a new session's PUBLISHes are new ones: {summary}");
    assert!(received >= n, "{summary}");
    eprintln!("{}: {summary}", test_name());
}

// ---------------------------------------------------------------------------------------------
// 2. QoS 2 through cut connections

/// `pub -q 2 -l` of 5 000 lines through 3 cut connections, subscriber at QoS 2: `pub` exits 0
/// with all acknowledged (PUBCOMP), and every line arrives, in order apart from duplicates
/// (a message whose PUBCOMP was lost with the connection is sent again in the new session),
/// with no more duplicates than messages sent again.
fn qos2_through_cut_connections(proto: Proto) {
    let mut broker = Broker::mosquitto(&setup(&[]));
    let (n, cuts) = (5_000, 3);
    let s = stream_through_cuts(
        &mut broker,
        proto,
        2,
        &[],
        Cuts {
            n,
            cuts,
            step: 1_000,
            hold: false,
            slow_acks: false,
        },
    );
    let (_, _, sent_again) = pub_progress(&s.out);
    let values: Vec<&str> = s.lines.iter().map(String::as_str).collect();
    let duplicates = in_order_apart_from_duplicates(&values, 1, n as u64)
        .unwrap_or_else(|e| panic!("{e}; pub sent {sent_again} again\n{}", show(&s.out)));
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

/// The same stream of 5 000 QoS 2 lines with nothing cut: every line arrives exactly once, in
/// order, and `pub` exits 0. (Mosquitto takes at most 20 incoming QoS 2 messages in flight per
/// client, `max_inflight_messages`; under v5 its CONNACK says so with Receive Maximum, under
/// v3.1.1 nothing can, and it answers the 21st with a PUBREC that means "quota exceeded" in
/// its log but looks like success on a v3.1.1 wire.)
fn qos2_stream(proto: Proto) {
    let broker = Broker::mosquitto(&setup(&[]));
    const N: usize = 5_000;
    let port = broker.port(proto);
    let topic = unique_topic() + "qos2";
    let mut sub = subscriber(at("sub", port, proto).args(["-t", &topic, "-q", "2", "-W", "120"]));
    let input: String = (1..=N).map(|i| format!("{i}\n")).collect();
    let out = run_with_timeout(
        at("pub", port, proto).args(["-t", &topic, "-q", "2", "-l"]),
        Some(input.clone().into_bytes()),
        DEADLINE,
    );
    out.assert_code(0).assert_stdout(b"");
    // Whatever pub said, a marker behind the stream shows when the subscriber has it all.
    publish_one(port, &topic, "end");
    sub.wait_for("the end marker", WAIT, |s| s.stdout.ends_with(b"end\n"));
    let sub_out = interrupt_sub(sub);
    let stdout = sub_out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, values) = lines.split_last().expect("the end marker");
    assert_eq!(*last, "end");
    let seen: std::collections::HashSet<&str> = values.iter().copied().collect();
    let missing: Vec<usize> = (1..=N)
        .filter(|i| !seen.contains(i.to_string().as_str()))
        .collect();
    assert!(
        stdout.strip_suffix("end\n") == Some(input.as_str()),
        "pub -q 2 -l exited 0, but the subscriber got {} lines for {N}: {} missing (the first: \
         {:?}), {} duplicates",
        values.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        values.len() - seen.len()
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_every_qos2_line_exactly_once() {
    qos2_stream(Proto::V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_every_qos2_line_exactly_once_v5() {
    qos2_stream(Proto::V5);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_qos2_lines_in_order_through_cut_connections() {
    qos2_through_cut_connections(Proto::V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_delivers_qos2_lines_in_order_through_cut_connections_v5() {
    qos2_through_cut_connections(Proto::V5);
}

// ---------------------------------------------------------------------------------------------
// 3. Back-pressure

/// Resident memory of process `pid` in bytes (VmRSS of /proc/PID/status), if it still runs.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Line `i` of the back-pressure test: its number and padding, 1 000 bytes with the newline.
fn padded_line(i: u64) -> String {
    format!("{i:06} {}\n", "x".repeat(LINE_BYTES as usize - 8))
}

const LINE_BYTES: u64 = 1000;

/// With the broker stalled (SIGSTOP) once the connection is up, a writer keeps feeding
/// `pub -q 1 -l`: mqttcli must stop reading stdin (the writer blocks on the full pipe) after
/// its window of about 1 000 messages, well before 20 MB, with its memory bounded (RSS under
/// 64 MB). Once the broker resumes, the writer finishes its 50 000 lines (50 MB), and every
/// line arrives exactly once, in order, with exit 0.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_stops_reading_stdin_while_the_broker_is_stalled() {
    const TOTAL: u64 = 50_000;
    const LIMIT: u64 = 20 << 20;
    const RSS_LIMIT: u64 = 64 << 20;
    let mut broker = Broker::mosquitto(&setup(&[]));
    let port = broker.port(Proto::V311);
    let topic = unique_topic() + "stall";
    let mut sub =
        subscriber(at("sub", port, Proto::V311).args(["-t", &topic, "-q", "1", "-W", "600"]));
    let mut publisher = Live::spawn(
        at("pub", port, Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l"])
            .args(RECONNECT),
        true,
    );
    let mut stdin = publisher.stdin();
    // The connection is up once the first line went round.
    stdin
        .write_all(padded_line(1).as_bytes())
        .expect("write to pub");
    sub.wait_lines(1, WAIT);
    let stopped = Stopped::stop(broker.pid());

    let written = Arc::new(AtomicU64::new(LINE_BYTES));
    let finished = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, finished) = (written.clone(), finished.clone());
        std::thread::spawn(move || -> std::io::Result<()> {
            // 8 lines per write: the counter moves only when the pipe took them.
            let mut i = 2;
            while i <= TOTAL {
                let chunk: String = (i..(i + 8).min(TOTAL + 1)).map(padded_line).collect();
                stdin.write_all(chunk.as_bytes())?;
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                i += 8;
            }
            finished.store(true, Ordering::SeqCst);
            Ok(()) // dropping stdin is the end of input
        })
    };

    // Progress stops: the same count for 2 s in a row, with the broker still stopped.
    let pid = publisher.pid();
    let start = Instant::now();
    let (mut last, mut since) = (written.load(Ordering::SeqCst), Instant::now());
    let mut max_rss = 0;
    let stalled_at = loop {
        let now = written.load(Ordering::SeqCst);
        if let Some(rss) = rss_bytes(pid) {
            max_rss = max_rss.max(rss);
        }
        assert!(
            now < LIMIT && !finished.load(Ordering::SeqCst),
            "pub kept reading stdin while the broker was stopped: {now} bytes ({} lines) \
             accepted, RSS up to {max_rss} bytes",
            now / LINE_BYTES
        );
        assert!(
            publisher.try_wait().is_none(),
            "pub ended while the broker was stopped: {}",
            publisher.seen(|s| s.stderr.clone())
        );
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(2) {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the writer never stopped: {now} bytes after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let rss = rss_bytes(pid).expect("pub is running");
    max_rss = max_rss.max(rss);
    let summary = format!(
        "stdin stopped taking lines at {stalled_at} bytes ({} lines) while the broker was \
         stopped; RSS up to {} KiB",
        stalled_at / LINE_BYTES,
        max_rss / 1024
    );
    assert!(max_rss < RSS_LIMIT, "memory not bounded: {summary}");

    drop(stopped); // SIGCONT
    let (out, _) = publisher.wait(Duration::from_secs(300));
    writer
        .join()
        .expect("writer thread")
        .expect("write every line to pub's stdin");
    out.assert_code(0).assert_stdout(b"");
    assert!(
        lines_starting(&out, WARNING).is_empty() && lines_starting(&out, ERROR).is_empty(),
        "{}",
        show(&out)
    );
    // Every line was acknowledged; a marker behind them shows the subscriber has them all.
    publish_one(port, &topic, "end");
    sub.wait_for("the end marker", Duration::from_secs(120), |s| {
        s.stdout.ends_with(b"\nend\n")
    });
    let expected: String = (1..=TOTAL)
        .map(padded_line)
        .chain(["end\n".into()])
        .collect();
    interrupt_sub(sub).assert_stdout(expected.as_bytes());
    eprintln!("{}: {summary}", test_name());
}

// ---------------------------------------------------------------------------------------------
// 4. Never a hang after stdin ends

/// How the broker goes away for good in `pub_lines_gives_up_after_stdin_ended`.
#[derive(Clone, Copy, Debug)]
enum Gone {
    /// Nothing listens any more: each attempt is refused.
    PortClosed,
    /// Something still accepts and closes at once, before any CONNACK (a load balancer in
    /// front of a dead broker).
    ClosedBeforeConnAck,
}

/// `pub -q 1 -l --reconnect-attempts 2` of 1 500 lines: the first 1 000 are acknowledged,
/// then the broker stalls, the other 500 go out and stdin ends, and only then does the broker
/// go away for good. `pub` must exit 3 within seconds (two attempts of ~100 ms and ~200 ms),
/// with one error that counts "1000 of 1500 messages acknowledged" and says it gave up, after
/// two warnings (the loss and the failed first attempt).
fn pub_lines_gives_up_after_stdin_ended(gone: Gone) {
    let mut broker = Broker::mosquitto(&setup(&[]));
    let port = broker.port(Proto::V311);
    let mut relay = CutProxy::start(port);
    let topic = unique_topic() + "gone";
    let mut publisher = Live::spawn(
        at("pub", relay.port(), Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l"])
            .args(["--reconnect-attempts", "2", "--reconnect-delay", "100ms"]),
        true,
    );
    let mut stdin = publisher.stdin();
    let lines = |range: std::ops::RangeInclusive<u32>| -> String {
        range.map(|i| format!("line {i}\n")).collect()
    };
    stdin
        .write_all(lines(1..=1000).as_bytes())
        .expect("write to pub");
    // A v3.1.1 CONNACK and 1 000 PUBACKs, 4 bytes each.
    relay.wait_until("1 000 PUBACKs", WAIT, |r| r.bytes_down() >= 4 + 1000 * 4);
    let stopped = Stopped::stop(broker.pid());
    assert_eq!(relay.bytes_down(), 4 + 1000 * 4, "nothing else came down");
    // A QoS 1 PUBLISH: fixed header (2 bytes while short), topic with its length, packet id,
    // payload. Only the first ones go out (rumqttc keeps at most 100 in flight), but once one
    // has, pub has read the input, which was in the pipe whole with its end.
    let first = 2 + 2 + topic.len() as u64 + 2 + "line 1001".len() as u64;
    let before = relay.bytes_up();
    stdin
        .write_all(lines(1001..=1500).as_bytes())
        .expect("write to pub");
    drop(stdin);
    relay.wait_until("the PUBLISH of line 1001", WAIT, |r| {
        r.bytes_up() >= before + first
    });
    // The broker goes away for good, long after stdin ended.
    relay.set_accepting(false);
    match gone {
        Gone::PortClosed => relay.close(),
        Gone::ClosedBeforeConnAck => assert_eq!(relay.cut(), 1, "pub was connected"),
    }
    let cut = Instant::now();
    broker.stop_process("KILL");
    drop(stopped);
    let (out, exited) = publisher.wait(WAIT);
    let took = exited - cut;
    out.assert_code(3).assert_stdout(b"");
    let warnings = lines_starting(&out, WARNING);
    let errors = lines_starting(&out, ERROR);
    assert!(
        warnings.len() == 2
            && warnings[0].starts_with(&format!(
                "{WARNING}lost the connection to 127.0.0.1:{}",
                relay.port()
            ))
            && warnings.iter().all(|w| w.contains("; reconnecting in "))
            && out.stderr.lines().count() == 3,
        "{gone:?}: two warnings (the loss, one failed attempt) and the error\n{}",
        show(&out)
    );
    assert!(
        errors.len() == 1
            && errors[0].starts_with(&format!("{ERROR}1000 of 1500 messages acknowledged: "))
            && errors[0].contains("gave up after 2 reconnect attempts"),
        "{gone:?}\n{}",
        show(&out)
    );
    assert!(
        took < Duration::from_secs(10),
        "{gone:?}: ended {took:?} after the broker went away\n{}",
        show(&out)
    );
    eprintln!(
        "{}: exit 3 {took:?} after the broker went away",
        test_name()
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_exits_3_when_the_port_closes_after_stdin_ended() {
    pub_lines_gives_up_after_stdin_ended(Gone::PortClosed);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_exits_3_when_connections_close_before_connack_after_stdin_ended() {
    pub_lines_gives_up_after_stdin_ended(Gone::ClosedBeforeConnAck);
}

// ---------------------------------------------------------------------------------------------
// 5. The in-flight window

/// `pub -l -q 1 -M 3`: three PUBLISHes go out, and no fourth until one is acknowledged; the
/// fourth then takes the freed packet id 1 (ids cycle through 1..=window). A scripted broker
/// decodes the ids: with the default window of 100 the fourth would come unacknowledged, as
/// id 4.
#[test]
fn max_inflight_bounds_the_publishes_awaiting_acknowledgement() {
    use crate::common::fake::{packet, FakeBroker};
    let played = FakeBroker::bind().serve_one(|conn| {
        conn.expect_connect(Proto::V311)?;
        conn.connack(Proto::V311, false)?;
        let publish_id = |conn: &mut crate::common::fake::Conn| -> Result<u16, String> {
            let p = conn.read()?;
            if p.kind() & 0xf0 != 0x30 {
                return Err(format!("expected PUBLISH, got {:02x}", p.kind()));
            }
            let b = p.body();
            let topic_len = usize::from(u16::from_be_bytes([b[0], b[1]]));
            Ok(u16::from_be_bytes([b[2 + topic_len], b[3 + topic_len]]))
        };
        let puback = |id: u16| packet(0x40, &id.to_be_bytes());
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(publish_id(conn)?);
        }
        conn.write(&puback(ids[0]))?;
        ids.push(publish_id(conn)?);
        for &id in &ids[1..] {
            conn.write(&puback(id))?;
        }
        ids.push(publish_id(conn)?);
        conn.write(&puback(ids[4]))?;
        conn.until_disconnect()?;
        Ok(ids)
    });
    let out = run_with_timeout(
        at("pub", played.port, Proto::V311).args(["-t", "t", "-q", "1", "-l", "-M", "3"]),
        Some(b"1\n2\n3\n4\n5\n".to_vec()),
        DEADLINE,
    );
    out.assert_code(0);
    assert_eq!(played.result(&out), [1, 2, 3, 1, 2]);
}
