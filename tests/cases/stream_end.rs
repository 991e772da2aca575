//! A stream ends: once stdin has ended, `pub -l` waits at most `--ack-timeout` for what is
//! outstanding, then exits with the count, even when the broker is gone for good.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::{subscriber, unique_topic, Broker, Live, Proto, DEADLINE};

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_lines_gives_up_after_the_ack_timeout_when_the_broker_is_gone() {
    let mut broker = Broker::anonymous_mosquitto();
    let topic = unique_topic() + "gone";
    let mut sub = subscriber(
        broker
            .cmd("sub", Proto::V311)
            .args(["-t", &topic, "-W", "60"]),
    );
    let mut publisher = Live::spawn(
        broker
            .cmd("pub", Proto::V311)
            .args(["-t", &topic, "-q", "1", "-l", "--ack-timeout", "2s"])
            .args([
                "--reconnect-delay",
                "100ms",
                "--reconnect-max-delay",
                "500ms",
            ]),
        true,
    );
    let mut stdin = publisher.stdin();
    let first: String = (1..=100).map(|i| format!("{i}\n")).collect();
    stdin.write_all(first.as_bytes()).expect("write to pub");
    sub.wait_for("100 lines", DEADLINE, |s| s.stdout.ends_with(b"\n100\n"));
    // The broker has them all; whether every PUBACK reached the publisher is not seen from
    // here (see the count below). Kill it for good.
    broker.stop_process("KILL");
    publisher.wait_stderr("reconnecting in", 1, DEADLINE);
    let rest: String = (101..=150).map(|i| format!("{i}\n")).collect();
    stdin.write_all(rest.as_bytes()).expect("write to pub");
    drop(stdin);
    let ended = Instant::now();
    let (out, _) = publisher.wait(DEADLINE);
    // The 2 s bound, the DISCONNECT that cannot go out (1 s), the driver's end (2 s), slack.
    assert!(
        ended.elapsed() < Duration::from_secs(20),
        "exited {:?} after the end of stdin",
        ended.elapsed()
    );
    out.assert_code(3);
    // The broker passed 100 on, but a PUBACK may have been lost with it: the count must add
    // up, with at least the 50 written after the kill outstanding.
    let last = out.stderr.lines().last().unwrap_or_default();
    let numbers: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let expected_shape = format!(
        "mqttcli: error: {} messages were not acknowledged within --ack-timeout 2s after the \
         input ended (the broker could not be reached); {} of 150 messages acknowledged",
        numbers.first().unwrap_or(&0),
        numbers.get(2).unwrap_or(&0)
    );
    assert_eq!(last, expected_shape, "{}", out.stderr);
    let (outstanding, acked) = (numbers[0], numbers[2]);
    assert_eq!(outstanding + acked, 150, "{last}");
    assert!(outstanding >= 50 && acked >= 1, "{last}");
}
