//! SUBACK refusals: one refused filter is a warning and `sub` goes on with the others; every
//! filter refused is exit 5. Mosquitto 2.0.11 grants SUBACK even for filters its ACL denies,
//! so a scripted fake broker on 127.0.0.1 answers CONNACK and a SUBACK with the codes a test
//! asks for (3.1.1: 0x80; 5: reason codes such as 0x87 "not authorized").

use crate::common::fake::{packet, varint, Conn, FakeBroker, Played};
use crate::common::{at, run, Out, Proto};
use Proto::{V311, V5};

/// What the fake broker does with its one connection.
struct Script {
    proto: Proto,
    /// One SUBACK code per filter, in order.
    codes: Vec<u8>,
    /// A QoS 0 PUBLISH (topic, payload) sent right after the SUBACK.
    publish: Option<(&'static str, &'static str)>,
}

/// What the fake broker saw.
#[derive(Debug)]
struct Seen {
    /// The SUBSCRIBE's filters with their requested QoS.
    filters: Vec<(String, u8)>,
    /// Whether the client ended with DISCONNECT (rather than just closing).
    disconnected: bool,
}

/// A fake broker that plays `script` on its one connection and reports what it saw.
fn start(script: Script) -> Played<Seen> {
    FakeBroker::bind().serve_one(move |conn| serve(conn, &script))
}

fn serve(conn: &mut Conn, script: &Script) -> Result<Seen, String> {
    let v5 = script.proto == V5;
    conn.expect_connect(script.proto)?;
    // Accepted, no session.
    conn.connack(script.proto, false)?;

    let subscribe = conn.read()?;
    if subscribe.0[0] != 0x82 {
        return Err(format!("expected SUBSCRIBE, got {:02x?}", subscribe.0));
    }
    let b = subscribe.body();
    let pkid = [b[0], b[1]];
    let mut at = 2;
    if v5 {
        let (props, size) = varint(&b[at..]);
        at += size + props;
    }
    let mut filters = Vec::new();
    while at + 2 <= b.len() {
        let len = u16::from_be_bytes([b[at], b[at + 1]]) as usize;
        let filter = String::from_utf8_lossy(&b[at + 2..at + 2 + len]).into_owned();
        let options = b[at + 2 + len];
        filters.push((filter, options & 0x03));
        at += 2 + len + 1;
    }
    let mut suback = pkid.to_vec();
    if v5 {
        suback.push(0);
    }
    suback.extend_from_slice(&script.codes);
    conn.write(&packet(0x90, &suback))?;

    if let Some((topic, payload)) = script.publish {
        let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
        publish.extend_from_slice(topic.as_bytes());
        if v5 {
            publish.push(0);
        }
        publish.extend_from_slice(payload.as_bytes());
        conn.write(&packet(0x30, &publish))?;
    }

    // Until the client disconnects or goes away.
    let disconnected = conn.until_disconnect()?;
    Ok(Seen {
        filters,
        disconnected,
    })
}

/// What `sub` prints on stderr for a refused filter.
fn refused_warning(filter: &str, reason: &str) -> String {
    format!("mqttcli: warning: subscription to '{filter}' was refused: {reason}\n")
}

/// 3.1.1 has one failure code; v5 says why.
fn refusal(proto: Proto) -> (u8, &'static str) {
    match proto {
        V311 => (0x80, "refused by the broker (0x80)"),
        V5 => (0x87, "not authorized (0x87)"),
    }
}

#[track_caller]
fn assert_clean_end(seen: &Seen, filters: &[(&str, u8)], out: &Out) {
    let expected: Vec<(String, u8)> = filters.iter().map(|(f, q)| (f.to_string(), *q)).collect();
    assert_eq!(seen.filters, expected, "SUBSCRIBE filters\n{}", out.stderr);
    assert!(
        seen.disconnected,
        "the client did not end with DISCONNECT\n{}",
        out.stderr
    );
}

/// One of two filters refused: a warning naming it, and `sub` receives on the other one
/// (here until `-C 1`), exit 0.
#[test]
fn one_refused_filter_is_a_warning_and_sub_goes_on() {
    for proto in [V311, V5] {
        let (code, reason) = refusal(proto);
        let broker = start(Script {
            proto,
            codes: vec![code, 0x01],
            publish: Some(("allowed/x", "still subscribed")),
        });
        let out = run(at("sub", broker.port, proto)
            .args(["-t", "denied/#", "-t", "allowed/+", "-q", "1"])
            .args(["-C", "1", "-W", "30"]));
        out.assert_ok(b"still subscribed\n");
        assert_eq!(
            out.stderr,
            refused_warning("denied/#", reason),
            "stderr of {proto:?} sub"
        );
        let seen = broker.result(&out);
        assert_clean_end(&seen, &[("denied/#", 1), ("allowed/+", 1)], &out);
    }
}

/// With `-E`, one granted filter is enough: exit 0 after the SUBACK, with the warning.
#[test]
fn one_refused_filter_with_exit_after_sub_exits_0() {
    for proto in [V311, V5] {
        let (code, reason) = refusal(proto);
        let broker = start(Script {
            proto,
            codes: vec![0x00, code],
            publish: None,
        });
        let out = run(at("sub", broker.port, proto).args([
            "-t",
            "granted",
            "-t",
            "refused/+",
            "-E",
            "-W",
            "30",
        ]));
        out.assert_ok(b"");
        assert_eq!(
            out.stderr,
            refused_warning("refused/+", reason),
            "stderr of {proto:?} sub -E"
        );
        let seen = broker.result(&out);
        assert_clean_end(&seen, &[("granted", 0), ("refused/+", 0)], &out);
    }
}

/// Every filter refused: exit 5 and one line naming each filter with its reason.
#[test]
fn every_filter_refused_exits_5() {
    let cases = [
        (
            V311,
            vec![0x80, 0x80],
            "'a/#': refused by the broker (0x80), 'b': refused by the broker (0x80)",
        ),
        (
            V5,
            vec![0x87, 0x80],
            "'a/#': not authorized (0x87), 'b': unspecified (0x80)",
        ),
    ];
    for (proto, codes, reasons) in cases {
        let broker = start(Script {
            proto,
            codes,
            publish: None,
        });
        let out = run(
            at("sub", broker.port, proto).args(["-t", "a/#", "-t", "b", "-q", "2", "-W", "30"])
        );
        let seen = broker.result(&out);
        let expected = format!(
            "mqttcli: error: the broker refused every subscription ({reasons}): \
             check the filters and the broker's access rules\n"
        );
        // All checked before any fails, so that a failure names every problem.
        let mut problems = Vec::new();
        if out.code != Some(5) {
            problems.push(format!("exit code {:?}, expected 5", out.code));
        }
        if out.stderr != expected {
            problems.push(format!(
                "stderr is not exactly the one error line {expected:?}"
            ));
        }
        if !seen.disconnected {
            problems.push("the client closed the connection without DISCONNECT".to_string());
        }
        assert!(
            problems.is_empty(),
            "{proto:?}: {problems:#?}\nstderr:\n{}",
            out.stderr
        );
        assert_eq!(seen.filters, [("a/#".to_string(), 2), ("b".to_string(), 2)]);
        out.assert_exact_error(5, expected.trim_end());
    }
}
