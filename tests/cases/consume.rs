//! At least once to stdout: `sub` acknowledges a QoS 1/2 message only after its output was
//! written, so a persistent session is a queue that `sub -c -q 1 -C N` consumes N at a time,
//! and what a killed or failing run did not write comes again on the next run. Mosquitto holds
//! the sessions; `mosquitto_pub` (the reference peer) queues the messages; a scripted broker
//! shows the acknowledgements on the wire.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::fake::{packet, FakeBroker};
use crate::common::lost::interrupt_sub;
use crate::common::{
    at, programs, run, signal, subscriber, subscriber_with_stdout, unique_id, unique_topic, Broker,
    Input, Live, Proto, Setup, DEADLINE,
};
use Proto::{V311, V5};

/// `mosquitto_pub -l` of `1..=n`, one per line, at `qos`, to `topic`.
fn queue_numbers(
    broker: &Broker,
    proto: Proto,
    topic: &str,
    qos: u8,
    range: std::ops::RangeInclusive<u32>,
) {
    let lines: String = range.map(|i| format!("{i}\n")).collect();
    let mut child = Command::new(programs::program("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &broker.port(proto).to_string()])
        .args(["-V", if proto == V5 { "mqttv5" } else { "mqttv311" }])
        .args(["-q", &qos.to_string(), "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_pub");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(lines.as_bytes())
        .expect("feed mosquitto_pub");
    assert!(
        child.wait().expect("mosquitto_pub").success(),
        "mosquitto_pub failed"
    );
}

/// The session's subscriber: `sub -c -i ID -q QOS -t TOPIC`, bounded by -W.
fn session_sub(broker: &Broker, proto: Proto, id: &str, topic: &str, qos: u8) -> Command {
    let mut cmd = broker.cmd("sub", proto);
    cmd.args([
        "-c",
        "-i",
        id,
        "-q",
        &qos.to_string(),
        "-t",
        topic,
        "-W",
        "60",
    ]);
    cmd
}

/// How often each number was printed, over every run.
fn tally(outputs: &[String]) -> BTreeMap<u32, usize> {
    let mut seen = BTreeMap::new();
    for out in outputs {
        for line in out.lines() {
            let n: u32 = line
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line:?}"));
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

fn ten_runs_take_a_thousand_each_once(proto: Proto, qos: u8) {
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["max_queued_messages 0"],
        ..Default::default()
    });
    let (id, topic) = (unique_id(), unique_topic() + "queue");
    run(session_sub(&broker, proto, &id, &topic, qos).arg("-E")).assert_ok(b"");
    queue_numbers(&broker, proto, &topic, qos, 1..=1000);
    let mut outputs = Vec::new();
    for i in 0..10 {
        let out = run(session_sub(&broker, proto, &id, &topic, qos).args(["-C", "100"]));
        out.assert_code(0);
        assert_eq!(
            out.stdout_str().lines().count(),
            100,
            "run {i}: {}",
            out.stderr
        );
        outputs.push(out.stdout_str());
    }
    let seen = tally(&outputs);
    let wrong: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(wrong.is_empty(), "printed other than once: {wrong:?}");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    // And in order: each run takes the next hundred.
    for (i, out) in outputs.iter().enumerate() {
        let first: u32 = out.lines().next().unwrap().parse().unwrap();
        assert_eq!(first, 100 * i as u32 + 1, "run {i} starts at");
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn count_takes_exactly_n_off_a_session_qos1() {
    ten_runs_take_a_thousand_each_once(V311, 1);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn count_takes_exactly_n_off_a_session_qos2() {
    // QoS 2 also needs the PUBRELs owed from one run answered in the next.
    ten_runs_take_a_thousand_each_once(V311, 2);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn count_takes_exactly_n_off_a_session_v5() {
    ten_runs_take_a_thousand_each_once(V5, 1);
}

/// Output into /dev/full: the write fails, so nothing is acknowledged, and the next run gets
/// every message.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn a_full_disk_loses_nothing() {
    let broker = Broker::anonymous_mosquitto();
    let (id, topic) = (unique_id(), unique_topic() + "full");
    run(session_sub(&broker, V311, &id, &topic, 1).arg("-E")).assert_ok(b"");
    queue_numbers(&broker, V311, &topic, 1, 1..=10);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let out = Live::spawn_with(
        session_sub(&broker, V311, &id, &topic, 1).args(["-C", "10"]),
        Input::Null,
        Stdio::from(full),
    )
    .wait(DEADLINE)
    .0;
    out.assert_code(1);
    out.assert_error_line(&["cannot write to stdout", "No space left on device"]);
    let again = run(session_sub(&broker, V311, &id, &topic, 1).args(["-C", "10"]));
    let expected: String = (1..=10).map(|i| format!("{i}\n")).collect();
    again.assert_ok(expected.as_bytes());
}

/// SIGKILL mid-stream: the next run prints what the killed one did not get to acknowledge.
/// Acknowledgements go out in order after each flush, so the messages printed twice are a
/// tail of the first run's output, never one from its middle.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn sigkill_loses_nothing_and_repeats_only_the_unacknowledged_tail() {
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &["max_queued_messages 0"],
        ..Default::default()
    });
    let (id, topic) = (unique_id(), unique_topic() + "kill");
    run(session_sub(&broker, V311, &id, &topic, 1).arg("-E")).assert_ok(b"");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("first");
    let first = subscriber_with_stdout(
        &mut session_sub(&broker, V311, &id, &topic, 1),
        Stdio::from(std::fs::File::create(&file).expect("create the output file")),
    );
    let n = 20_000;
    let feeder = {
        let port = broker.port(V311);
        let topic = topic.clone();
        std::thread::spawn(move || {
            let lines: String = (1..=n).map(|i| format!("{i}\n")).collect();
            let mut child = Command::new(programs::program("mosquitto_pub"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-q",
                    "1",
                    "-t",
                    &topic,
                    "-l",
                ])
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn mosquitto_pub");
            let _ = child
                .stdin
                .take()
                .expect("stdin")
                .write_all(lines.as_bytes());
            child.wait().expect("mosquitto_pub").success()
        })
    };
    // Killed once it has written a good part, while messages are still flowing.
    let end = std::time::Instant::now() + DEADLINE;
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 20_000 {
        assert!(
            std::time::Instant::now() < end,
            "the subscriber wrote too little"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(first.pid(), "KILL");
    let _ = first.wait(DEADLINE);
    assert!(feeder.join().expect("feeder"), "mosquitto_pub failed");

    let first = std::fs::read_to_string(&file).expect("read the first run's output");
    // A killed writer may leave half a line; the message is then printed again in full.
    let first: String = match first.rfind('\n') {
        Some(i) => first[..=i].to_string(),
        None => String::new(),
    };
    // The rest, up to a marker queued behind it.
    queue_numbers(&broker, V311, &topic, 1, 0..=0);
    let mut second = subscriber(&mut session_sub(&broker, V311, &id, &topic, 1));
    second.wait_for("the marker", DEADLINE, |s| s.stdout.ends_with(b"\n0\n"));
    let second = interrupt_sub(second).stdout_str();
    let second = second.strip_suffix("0\n").expect("the marker last");
    let seen = tally(&[first.clone(), second.to_string()]);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "every message in one run or the other"
    );
    let twice: Vec<u32> = seen
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(&k, _)| k)
        .collect();
    let first_lines: Vec<u32> = first.lines().map(|l| l.parse().unwrap()).collect();
    let tail: Vec<u32> = first_lines[first_lines.len() - twice.len()..].to_vec();
    let mut tail_sorted = tail.clone();
    tail_sorted.sort_unstable();
    assert_eq!(
        tail_sorted, twice,
        "printed twice: the first run's unacknowledged tail"
    );
}

/// The scripted broker's side up to the messages: CONNACK, then a SUBACK granting `granted`.
fn connect_and_subscribe(
    conn: &mut crate::common::fake::Conn,
    proto: Proto,
    granted: u8,
) -> Result<(), String> {
    conn.expect_connect(proto)?;
    conn.connack(proto, false)?;
    let subscribe = conn.read()?;
    let b = subscribe.body();
    let mut suback = vec![b[0], b[1]];
    if proto == V5 {
        suback.push(0);
    }
    suback.push(granted);
    conn.write(&packet(0x90, &suback))
}

/// A PUBLISH (`first`: its type and flags byte) of `m{pkid}` to topic `t`.
fn publish_m(proto: Proto, first: u8, pkid: u16) -> Vec<u8> {
    let mut p = vec![0, 1, b't'];
    p.extend_from_slice(&pkid.to_be_bytes());
    if proto == V5 {
        p.push(0);
    }
    p.extend_from_slice(format!("m{pkid}").as_bytes());
    packet(first, &p)
}

/// On the wire: the PUBACKs follow the PUBLISHes' order, and with `-C 3` of five messages
/// only the three printed are acknowledged before DISCONNECT.
#[test]
fn acknowledgements_follow_the_output_in_order() {
    for proto in [V311, V5] {
        let played = FakeBroker::bind().serve_one(move |conn| {
            connect_and_subscribe(conn, proto, 1)?;
            for pkid in 1..=5u16 {
                conn.write(&publish_m(proto, 0x32, pkid))?;
            }
            let mut acked = Vec::new();
            loop {
                let p = conn.read()?;
                match p.kind() {
                    0x40 => acked.push(u16::from_be_bytes([p.body()[0], p.body()[1]])),
                    0xe0 => return Ok(acked),
                    0xc0 => conn.write(&[0xd0, 0])?,
                    other => return Err(format!("unexpected packet {other:02x}")),
                }
            }
        });
        let out = run(at("sub", played.port, proto).args(["-t", "t", "-q", "1", "-C", "3"]));
        out.assert_ok(b"m1\nm2\nm3\n");
        assert_eq!(played.result(&out), [1, 2, 3], "PUBACKs under {proto:?}");
    }
}

/// A burst: hundreds of QoS 1 and QoS 2 messages arrive at once and are printed in one write;
/// their PUBACKs and PUBRECs (written together under 3.1.1, see connection::Bursts) keep the
/// order the messages came in. (The PUBREL → PUBCOMP half may finish after the DISCONNECT
/// that `-C` leads to, in the next session: only no stray PUBCOMP is checked.)
#[test]
fn a_burst_of_acknowledgements_keeps_the_arrival_order() {
    const N: u16 = 300;
    for proto in [V311, V5] {
        let played = FakeBroker::bind().serve_one(move |conn| {
            connect_and_subscribe(conn, proto, 2)?;
            let mut burst = Vec::new();
            for pkid in 1..=N {
                // Odd ids at QoS 1, even ones at QoS 2.
                burst.extend(publish_m(
                    proto,
                    if pkid % 2 == 1 { 0x32 } else { 0x34 },
                    pkid,
                ));
            }
            conn.write(&burst)?;
            let (mut acked, mut completed) = (Vec::new(), 0);
            loop {
                let p = conn.read()?;
                let pkid = || u16::from_be_bytes([p.body()[0], p.body()[1]]);
                match p.kind() {
                    0x40 | 0x50 => {
                        acked.push((pkid(), p.kind()));
                        if p.kind() == 0x50 {
                            conn.write(&packet(0x62, &pkid().to_be_bytes()))?;
                        }
                    }
                    0x70 => completed += 1,
                    0xe0 => return Ok((acked, completed)),
                    0xc0 => conn.write(&[0xd0, 0])?,
                    other => return Err(format!("unexpected packet {other:02x}")),
                }
            }
        });
        let out =
            run(at("sub", played.port, proto).args(["-t", "t", "-q", "2", "-C", &N.to_string()]));
        let expected: String = (1..=N).map(|i| format!("m{i}\n")).collect();
        out.assert_ok(expected.as_bytes());
        let (acked, completed) = played.result(&out);
        let want: Vec<(u16, u8)> = (1..=N)
            .map(|i| (i, if i % 2 == 1 { 0x40 } else { 0x50 }))
            .collect();
        assert_eq!(acked, want, "PUBACK/PUBREC order under {proto:?}");
        assert!(
            completed <= N / 2,
            "{completed} PUBCOMPs for {} PUBRELs",
            N / 2
        );
    }
}
