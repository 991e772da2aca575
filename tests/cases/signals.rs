//! Ending on a signal or a closed stdout: clean DISCONNECT (so no last will), documented codes.

use std::process::{Command, Stdio};

use crate::common::{
    publish, signal, subscriber, subscriber_with_stdout, unique_topic, Broker, Input, Live, Proto,
};
use Proto::{V311, V5};

/// A subscriber with a last will on `will`, and a watcher subscribed to `will`.
fn sub_with_will(broker: &Broker, proto: Proto, will: &str) -> (Live, Live) {
    let watcher = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", will, "-q", "1", "-C", "1", "-W", "30"]),
    );
    let sub = subscriber(broker.cmd("sub", proto).args([
        "-t",
        &format!("{will}/data"),
        "-W",
        "60",
        "--will-topic",
        will,
        "--will-payload",
        "will fired",
        "--will-qos",
        "1",
    ]));
    (sub, watcher)
}

fn interrupt_ends_with_130_and_no_will(proto: Proto, sig: &str) {
    let broker = Broker::start();
    let will = unique_topic() + "will";
    let (sub, watcher) = sub_with_will(&broker, proto, &will);
    signal(sub.pid(), sig);
    sub.finish().assert_code(130).assert_stdout(b"");
    // Had the broker published the will, the watcher would print it before the marker.
    publish(&broker, V311, &will, &["-q", "1", "-m", "marker"]);
    watcher.finish().assert_ok(b"marker\n");
}

#[test]
fn sigint_ends_sub_with_130_without_the_will_v311() {
    interrupt_ends_with_130_and_no_will(V311, "INT");
}

#[test]
fn sigint_ends_sub_with_130_without_the_will_v5() {
    interrupt_ends_with_130_and_no_will(V5, "INT");
}

#[test]
fn sigterm_ends_sub_with_130_without_the_will() {
    interrupt_ends_with_130_and_no_will(V311, "TERM");
}

/// The control experiment: the will is set up right, so its absence above means something.
#[test]
fn sigkill_lets_the_broker_publish_the_will() {
    let broker = Broker::start();
    let will = unique_topic() + "will";
    let (sub, watcher) = sub_with_will(&broker, V311, &will);
    signal(sub.pid(), "KILL");
    assert_eq!(sub.finish().code, None, "killed by a signal");
    watcher.finish().assert_ok(b"will fired\n");
}

#[test]
fn sigint_ends_an_endless_publish_loop_with_130() {
    let broker = Broker::start();
    let topic = unique_topic() + "loop";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-C", "2", "-W", "30"]),
    );
    let publisher = Live::spawn(
        broker
            .cmd("pub", V311)
            .args(["-t", &topic, "-m", "tick {n}", "--interval", "50ms"]),
        false,
    );
    // Two messages seen: the loop is running.
    sub.finish().assert_ok(b"tick 0\ntick 1\n");
    signal(publisher.pid(), "INT");
    publisher.finish().assert_code(130).assert_stdout(b"");
}

#[test]
fn closed_stdout_ends_sub_with_0() {
    let broker = Broker::start();
    let topic = unique_topic() + "head";
    // mqttcli sub … | head -1
    let mut head = Live::spawn_with(Command::new("head").arg("-1"), Input::Pipe, Stdio::piped());
    let head_stdin = head.stdin();
    let sub = subscriber_with_stdout(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-W", "30"]),
        head_stdin.into(),
    );
    publish(&broker, V311, &topic, &["-q", "1", "-m", "first"]);
    head.finish().assert_ok(b"first\n");
    // head is gone: the next message cannot be written and the subscriber must stop cleanly.
    publish(&broker, V311, &topic, &["-q", "1", "-m", "second"]);
    let out = sub.finish();
    out.assert_code(0);
    assert!(
        !out.stderr.contains("mqttcli: error"),
        "a closed stdout is not an error:\n{}",
        out.stderr
    );
}
