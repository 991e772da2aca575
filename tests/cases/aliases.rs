//! Topic aliases on MQTT 5 streams (issue 10): a scripted broker decodes the PUBLISHes to see
//! which carry the topic and which only the alias, also across a reconnect, where an alias
//! means nothing; Mosquitto with `mosquitto_sub` as the reference subscriber shows that every
//! message still arrives on its topic.

use crate::common::fake::{packet, Accept, Conn, FakeBroker, Packet};
use crate::common::wire5::{decode_publish, V};
use crate::common::{at, run_with_timeout, Out, Proto, DEADLINE};

use super::mqtt5::{mosquitto, mosquitto_sub, record, WAIT};

/// A CONNACK property: Topic Alias Maximum 2.
const TWO_ALIASES: &[u8] = &[0x22, 0, 2];

/// What a PUBLISH named: its topic ("" when only the alias) and the alias, with its payload.
type Named = (String, Option<u32>, String);

fn named(p: &Packet) -> Named {
    let p = decode_publish(p);
    let alias = p.properties.iter().find_map(|(id, v)| match (id, v) {
        (0x23, V::N(n)) => Some(*n),
        _ => None,
    });
    (p.topic, alias, String::from_utf8(p.payload).unwrap())
}

fn n(topic: &str, alias: Option<u32>, payload: &str) -> Named {
    (topic.into(), alias, payload.into())
}

/// `pub -V 5 ARGS` with `stdin` against a scripted broker whose CONNACK has
/// `connack_properties`: the run and the PUBLISHes it sent.
fn publishes(args: &[&str], stdin: &str, connack_properties: &'static [u8]) -> (Out, Vec<Named>) {
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_one(move |conn| record(conn, connack_properties));
    let out = run_with_timeout(
        at("pub", port, Proto::V5).args(args),
        Some(stdin.as_bytes().to_vec()),
        DEADLINE,
    );
    let (_, rest) = played.result(&out);
    out.assert_ok(b"");
    let sent = rest
        .iter()
        .filter(|p| p.kind() == 0x30)
        .map(named)
        .collect();
    (out, sent)
}

const LINES: &str = "a\t1\nb\t2\na\t3\nc\t4\nb\t5\n";

/// The first message to a topic carries the topic and an alias, later ones the alias alone;
/// once the broker's two aliases are taken, a third topic goes out whole every time.
#[test]
fn a_stream_sends_each_topic_once_then_its_alias() {
    let (_, sent) = publishes(&["-l", "--topic-sep", "\\t"], LINES, TWO_ALIASES);
    assert_eq!(
        sent,
        [
            n("a", Some(1), "1"),
            n("b", Some(2), "2"),
            n("", Some(1), "3"),
            n("c", None, "4"),
            n("", Some(2), "5"),
        ]
    );
}

/// No alias where the broker takes none, where the user said not to, or on a single message
/// (where it would only add to the packet).
#[test]
fn topics_go_whole_without_aliases_to_use() {
    let whole = [
        n("a", None, "1"),
        n("b", None, "2"),
        n("a", None, "3"),
        n("c", None, "4"),
        n("b", None, "5"),
    ];
    let (_, sent) = publishes(&["-l", "--topic-sep", "\\t"], LINES, &[]);
    assert_eq!(sent, whole, "the broker takes no aliases");
    let (_, sent) = publishes(
        &["-l", "--topic-sep", "\\t", "--no-topic-alias"],
        LINES,
        TWO_ALIASES,
    );
    assert_eq!(sent, whole, "--no-topic-alias");
    let (_, sent) = publishes(&["-t", "a", "-m", "1"], "", TWO_ALIASES);
    assert_eq!(sent, [n("a", None, "1")], "a single message");
    let (_, sent) = publishes(&["-t", "a", "-m", "x", "--repeat", "2"], "", TWO_ALIASES);
    assert_eq!(
        sent,
        [n("a", Some(1), "x"), n("", Some(1), "x")],
        "--repeat 2"
    );
}

/// `-D PUBLISH topic-alias N` on a stream: N is announced with the topic once, then sent alone.
#[test]
fn a_given_alias_is_announced_once() {
    let (_, sent) = publishes(
        &["-t", "t/x", "-l", "-D", "PUBLISH", "topic-alias", "2"],
        "1\n2\n3\n",
        TWO_ALIASES,
    );
    assert_eq!(
        sent,
        [
            n("t/x", Some(2), "1"),
            n("", Some(2), "2"),
            n("", Some(2), "3")
        ]
    );
}

/// A CONNECT, then a CONNACK with Topic Alias Maximum 2 (and `session_present`).
fn accept(accept: &mut Accept, session_present: bool) -> Result<Conn, String> {
    let mut conn = accept.next()?;
    conn.expect_connect(Proto::V5)?;
    conn.connack_v5(session_present, TWO_ALIASES)?;
    Ok(conn)
}

/// The next PUBLISH (answering pings on the way), decoded: (dup, pkid, named).
fn next_publish(conn: &mut Conn) -> Result<(bool, u16, Named), String> {
    loop {
        let p = conn.read()?;
        match p.kind() {
            0x30 => {
                let d = decode_publish(&p);
                return Ok((d.dup, d.pkid, named(&p)));
            }
            0xc0 => conn.write(&[0xd0, 0])?,
            other => {
                return Err(format!(
                    "expected PUBLISH, got a packet of type {other:02x}"
                ))
            }
        }
    }
}

fn puback(conn: &mut Conn, pkid: u16) -> Result<(), String> {
    conn.write(&packet(0x40, &pkid.to_be_bytes()))
}

/// An alias holds only on its connection. The two QoS 1 messages in flight when it breaks
/// (-M 2) go out again on the resumed session with their topic and no alias, and the next new
/// message announces the alias afresh.
#[test]
fn after_a_reconnect_every_publish_names_its_topic_again() {
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_in_turn(|listener| {
        let mut first = accept(listener, false)?;
        let before = [next_publish(&mut first)?, next_publish(&mut first)?];
        // Neither acknowledged: the connection breaks with both in flight.
        drop(first);
        let mut second = accept(listener, true)?;
        let mut after = Vec::new();
        for _ in 0..4 {
            let p = next_publish(&mut second)?;
            puback(&mut second, p.1)?;
            after.push(p);
        }
        second.until_disconnect()?;
        Ok((before, after))
    });
    let out = run_with_timeout(
        at("pub", port, Proto::V5)
            .args([
                "-t",
                "t/x",
                "-l",
                "-q",
                "1",
                "-M",
                "2",
                "-c",
                "-i",
                "alias-reconnect",
            ])
            .args(["--reconnect-delay", "100ms"]),
        Some(b"1\n2\n3\n4\n".to_vec()),
        DEADLINE,
    );
    let (before, after) = played.result(&out);
    out.assert_ok(b"");
    assert_eq!(
        before,
        [
            (false, 1, n("t/x", Some(1), "1")),
            (false, 2, n("", Some(1), "2"))
        ]
    );
    assert_eq!(
        after,
        [
            (true, 1, n("t/x", None, "1")),
            (true, 2, n("t/x", None, "2")),
            (false, 1, n("t/x", Some(1), "3")),
            (false, 2, n("", Some(1), "4")),
        ]
    );
}

/// Through a real broker, to the reference subscriber: every message of an aliased stream on
/// its own topic, in order, at QoS 1, with more topics than the broker has aliases (Mosquitto's
/// `max_topic_alias 2`), so some go whole between aliased ones.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn mosquitto_sub_sees_every_topic_of_an_aliased_stream() {
    let mut broker = mosquitto(&["max_topic_alias 2"]);
    let root = crate::common::unique_topic();
    let lines: Vec<String> = (0..300)
        .map(|i| format!("{root}/{}\tm{i}", ["a", "b", "c"][i % 3]))
        .collect();
    let mut sub = mosquitto_sub(&mut broker, &format!("{root}/#"), "%t %p", lines.len());
    let out = run_with_timeout(
        broker
            .cmd("pub", Proto::V5)
            .args(["-l", "--topic-sep", "\\t", "-q", "1", "-d"]),
        Some((lines.join("\n") + "\n").into_bytes()),
        DEADLINE,
    );
    out.assert_ok(b"");
    assert!(
        out.stderr.contains("the broker takes 2 topic aliases"),
        "{}",
        out.dump()
    );
    sub.wait_lines(lines.len(), WAIT);
    let got = sub.finish();
    let want: Vec<String> = lines.iter().map(|l| l.replacen('\t', " ", 1)).collect();
    assert_eq!(got.stdout_str().lines().collect::<Vec<_>>(), want);
}
