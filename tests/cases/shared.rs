//! `$share/GROUP/FILTER`: two `sub` processes in one share group on Mosquitto split the
//! messages between them, each delivered exactly once, while a plain subscriber gets them all.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    publish, signal, subscriber, subscriber_with_stdout, unique_topic, Broker, Live, Proto, Setup,
    DEADLINE,
};
use Proto::{V311, V5};

const N: usize = 20;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn shared_group_splits_the_messages(proto: Proto) {
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        ..Setup::default()
    });
    let topic = unique_topic() + "work";
    let shared = format!("$share/workers/{topic}");
    let dir = tempfile::tempdir().expect("tempdir");
    // Each member writes to a file, so the test can see the messages arrive while it runs.
    let outputs: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("member{i}")))
        .collect();
    let members: Vec<Live> = outputs
        .iter()
        .map(|path| {
            let file = File::create(path).expect("create output file");
            // Sub::start returns after this member's SUBACK.
            subscriber_with_stdout(
                broker
                    .cmd("sub", proto)
                    .args(["-t", &shared, "-q", "1", "-W", "120"]),
                Stdio::from(file),
            )
        })
        .collect();
    let everything = subscriber(broker.cmd("sub", proto).args([
        "-t",
        &topic,
        "-q",
        "1",
        "-C",
        &N.to_string(),
        "-W",
        "60",
    ]));

    publish(
        &broker,
        proto,
        &topic,
        &["-q", "1", "-m", "m{n}", "--repeat", &N.to_string()],
    );
    let expected: Vec<String> = (0..N).map(|n| format!("m{n}")).collect();
    everything
        .finish()
        .assert_ok((expected.join("\n") + "\n").as_bytes());

    // sub flushes whenever no further message is waiting: wait until the group has printed N.
    let end = Instant::now() + DEADLINE;
    while outputs.iter().map(|p| lines(p).len()).sum::<usize>() < N {
        assert!(
            Instant::now() < end,
            "the share group printed {:?} within {DEADLINE:?}, expected {N} messages in all",
            outputs.iter().map(|p| lines(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for member in members {
        signal(member.pid(), "TERM");
        let out = member.finish();
        out.assert_code(130);
    }
    let got: Vec<Vec<String>> = outputs.iter().map(|p| lines(p)).collect();
    let mut all: Vec<String> = got.concat();
    all.sort_by_key(|m| m.get(1..).and_then(|n| n.parse::<usize>().ok()));
    assert_eq!(all, expected, "the members printed {got:?}");
    // Mosquitto hands a group's messages round robin: each member gets a share.
    assert!(
        got.iter().all(|g| !g.is_empty()),
        "one member got every message: {got:?}"
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn shared_subscription_delivers_each_message_once_v311() {
    shared_group_splits_the_messages(V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn shared_subscription_delivers_each_message_once_v5() {
    shared_group_splits_the_messages(V5);
}
