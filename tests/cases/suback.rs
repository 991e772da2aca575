//! SUBACK refusals: one refused filter is a warning and `sub` goes on with the others; every
//! filter refused is exit 5. Mosquitto 2.0.11 grants SUBACK even for filters its ACL denies,
//! so a scripted fake broker on 127.0.0.1 answers CONNACK and a SUBACK with the codes a test
//! asks for (3.1.1: 0x80; 5: reason codes such as 0x87 "not authorized").

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use crate::common::{at, read_packet, run, Out, Proto, DEADLINE};
use Proto::{V311, V5};

/// How long the fake broker waits for the client's next packet.
const WAIT: Duration = Duration::from_secs(30);

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

/// A broker that accepts one connection, plays `Script` and reports what it saw.
struct FakeBroker {
    port: u16,
    seen: Receiver<Result<Seen, String>>,
}

impl FakeBroker {
    fn start(script: Script) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake broker");
        let port = listener.local_addr().expect("fake broker address").port();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            let result = listener
                .accept()
                .map_err(|e| format!("accept: {e}"))
                .and_then(|(conn, _)| serve(conn, &script));
            let _ = tx.send(result);
        });
        FakeBroker { port, seen }
    }

    /// What the broker saw, once the client is gone.
    #[track_caller]
    fn seen(self, out: &Out) -> Seen {
        match self.seen.recv_timeout(DEADLINE) {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => panic!("fake broker: {e}\nclient stderr:\n{}", out.stderr),
            Err(e) => panic!(
                "fake broker did not finish: {e}\nclient stderr:\n{}",
                out.stderr
            ),
        }
    }
}

/// The packet's body: what follows the fixed header.
fn body(packet: &[u8]) -> &[u8] {
    let header = 1 + packet[1..].iter().position(|b| b & 0x80 == 0).unwrap_or(0) + 1;
    &packet[header..]
}

/// A variable byte integer (remaining length, property length) at the start of `bytes`:
/// (value, its size in bytes).
fn varint(bytes: &[u8]) -> (usize, usize) {
    let (mut value, mut shift) = (0usize, 0);
    for (i, b) in bytes.iter().enumerate() {
        value |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, bytes.len())
}

/// `first` byte, the remaining length, then `rest`.
fn packet(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = rest.len();
    loop {
        let mut b = (len & 0x7f) as u8;
        len >>= 7;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(rest);
    out
}

fn serve(mut conn: TcpStream, script: &Script) -> Result<Seen, String> {
    conn.set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    let v5 = script.proto == V5;
    let connect = read_packet(&mut conn).map_err(|e| format!("reading CONNECT: {e}"))?;
    if connect[0] != 0x10 {
        return Err(format!("expected CONNECT, got {connect:02x?}"));
    }
    // "MQTT" with its length, then the protocol level: 4 for 3.1.1, 5 for 5.
    let level = body(&connect).get(6).copied();
    let want = if v5 { 5 } else { 4 };
    if level != Some(want) {
        return Err(format!(
            "CONNECT with protocol level {level:?}, expected {want}"
        ));
    }
    // Accepted, no session; v5 adds an empty property list.
    let connack = if v5 {
        packet(0x20, &[0, 0, 0])
    } else {
        packet(0x20, &[0, 0])
    };
    conn.write_all(&connack).map_err(|e| e.to_string())?;

    let subscribe = read_packet(&mut conn).map_err(|e| format!("reading SUBSCRIBE: {e}"))?;
    if subscribe[0] != 0x82 {
        return Err(format!("expected SUBSCRIBE, got {subscribe:02x?}"));
    }
    let b = body(&subscribe);
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
    conn.write_all(&packet(0x90, &suback))
        .map_err(|e| e.to_string())?;

    if let Some((topic, payload)) = script.publish {
        let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
        publish.extend_from_slice(topic.as_bytes());
        if v5 {
            publish.push(0);
        }
        publish.extend_from_slice(payload.as_bytes());
        conn.write_all(&packet(0x30, &publish))
            .map_err(|e| e.to_string())?;
    }

    // Until the client disconnects or goes away.
    let mut disconnected = false;
    while let Ok(p) = read_packet(&mut conn) {
        match p[0] & 0xf0 {
            0xc0 => conn.write_all(&[0xd0, 0]).map_err(|e| e.to_string())?,
            0xe0 => {
                disconnected = true;
                break;
            }
            _ => {}
        }
    }
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
        let broker = FakeBroker::start(Script {
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
        let seen = broker.seen(&out);
        assert_clean_end(&seen, &[("denied/#", 1), ("allowed/+", 1)], &out);
    }
}

/// With `-E`, one granted filter is enough: exit 0 after the SUBACK, with the warning.
#[test]
fn one_refused_filter_with_exit_after_sub_exits_0() {
    for proto in [V311, V5] {
        let (code, reason) = refusal(proto);
        let broker = FakeBroker::start(Script {
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
        let seen = broker.seen(&out);
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
        let broker = FakeBroker::start(Script {
            proto,
            codes,
            publish: None,
        });
        let out = run(
            at("sub", broker.port, proto).args(["-t", "a/#", "-t", "b", "-q", "2", "-W", "30"])
        );
        let seen = broker.seen(&out);
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
