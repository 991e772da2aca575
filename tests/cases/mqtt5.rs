//! MQTT 5 (issue 10): properties in both directions against Mosquitto's own clients as the
//! reference peer, the broker's CONNACK limits, message expiry, will delay, subscription
//! options as the broker applies them, and, for what no broker shows, a scripted broker that
//! decodes the packets' bytes. Every usage error word for word.
//!
//! The reference subscriber is `mosquitto_sub` (packaged with `mosquitto_pub`, which build.rs
//! looks for); it is known to be subscribed once Mosquitto logs its SUBACK (`log_type all`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fake::{packet, Conn, FakeBroker, Packet};
use crate::common::wire5::{decode_publish, p, Props, Reader, V};
use crate::common::{
    at, mqttcli, programs, publish, run, run_with_timeout, signal, subscriber, unique_id,
    unique_topic, Broker, Live, Out, Proto, Setup,
};
use Proto::{V311, V5};

/// For a subscriber to subscribe, a message to arrive, a process to end.
pub(super) const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Mosquitto and its clients

/// An anonymous Mosquitto that logs every packet (for `Broker::wait_log`), with `extra`
/// configuration lines.
pub(super) fn mosquitto(extra: &[&str]) -> Broker {
    let mut lines = vec!["log_type all"];
    lines.extend_from_slice(extra);
    Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &lines,
        ..Setup::default()
    })
}

/// `mosquitto_sub`, from the same package (mosquitto-clients) as the `mosquitto_pub` that
/// build.rs found.
fn mosquitto_sub_program() -> PathBuf {
    programs::program("mosquitto_pub").with_file_name("mosquitto_sub")
}

/// `PROGRAM -h 127.0.0.1 -p PORT -V 5` for a Mosquitto client.
fn reference(program: PathBuf, broker: &Broker) -> Command {
    let mut cmd = Command::new(program);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port(V5).to_string(),
        "-V",
        "5",
    ]);
    cmd
}

/// `mosquitto_pub -V 5 -t TOPIC ARGS…`, run to success.
#[track_caller]
fn mosquitto_pub(broker: &Broker, topic: &str, args: &[&str]) {
    run(reference(programs::program("mosquitto_pub"), broker)
        .args(["-t", topic])
        .args(args))
    .assert_ok(b"");
}

/// `mosquitto_sub -V 5 -t TOPIC -F FORMAT -C COUNT -W 30`, returned once the broker has sent
/// it its SUBACK: whatever is published from then on reaches it.
#[track_caller]
pub(super) fn mosquitto_sub(broker: &mut Broker, topic: &str, format: &str, count: usize) -> Live {
    let id = unique_id();
    let mut cmd = reference(mosquitto_sub_program(), broker);
    cmd.args(["-i", &id, "-t", topic, "-F", format])
        .args(["-C", &count.to_string(), "-W", "30"]);
    let sub = Live::spawn(&mut cmd, false);
    broker.wait_log(&format!("Sending SUBACK to {id}"), 1, WAIT);
    sub
}

/// `sub -V 5 ARGS --json -C COUNT`, subscribed.
fn json_sub(broker: &Broker, topic: &str, count: usize, args: &[&str]) -> Live {
    subscriber(
        broker
            .cmd("sub", V5)
            .args(["-t", topic, "-q", "1", "--json", "-W", "30"])
            .args(["-C", &count.to_string()])
            .args(args),
    )
}

/// The JSON lines a `sub --json` printed.
#[track_caller]
fn json_lines(out: &Out) -> Vec<Value> {
    out.stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", out.dump())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. mosquitto_pub → mqttcli sub --json

/// Every PUBLISH property mosquitto_pub can send appears in `sub --json` exactly: repeated
/// user-property keys in order, the expiry as sent (delivered at once).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn sub_json_shows_every_property_mosquitto_pub_sent() {
    let broker = mosquitto(&[]);
    let topic = unique_topic() + "props";
    let sub = json_sub(&broker, &topic, 1, &[]);
    let args = [
        &["-q", "1", "-m", "hé"][..],
        &["-D", "PUBLISH", "user-property", "k", "v1"],
        &["-D", "PUBLISH", "user-property", "other", "x y"],
        &["-D", "PUBLISH", "user-property", "k", "v2"],
        &["-D", "PUBLISH", "content-type", "text/plain; charset=utf-8"],
        &["-D", "PUBLISH", "response-topic", "replies/here"],
        &["-D", "PUBLISH", "correlation-data", "req-42"],
        &["-D", "PUBLISH", "message-expiry-interval", "3600"],
        &["-D", "PUBLISH", "payload-format-indicator", "1"],
    ];
    mosquitto_pub(&broker, &topic, &args.concat());
    let out = sub.finish();
    out.assert_code(0);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{}", out.dump());
    let m = &lines[0];
    assert_eq!(
        (&m["topic"], &m["qos"], &m["retain"], &m["payload"]),
        (&json!(topic), &json!(1), &json!(false), &json!("hé"))
    );
    assert_eq!(
        m["properties"],
        json!({
            "payload_format_indicator": 1,
            "message_expiry_interval": 3600,
            "content_type": "text/plain; charset=utf-8",
            "response_topic": "replies/here",
            "correlation_data": "req-42",
            "user_properties": [["k", "v1"], ["other", "x y"], ["k", "v2"]],
        }),
        "{}",
        out.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. mqttcli pub → mosquitto_sub

/// mosquitto_sub's line for each message: user properties (`key:value`, space-separated),
/// content type, response topic, correlation data, expiry, payload format, payload.
const PROPERTY_LINE: &str = "%P|%C|%R|%D|%E|%F|%p";

/// What `pub -V 5` sends, with the flags and with `-D`, is what mosquitto_sub receives,
/// byte for byte; binary correlation data from `--correlation-data-base64` included.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn mosquitto_sub_receives_every_property_pub_sent() {
    let mut broker = mosquitto(&[]);
    let topic = unique_topic() + "props";
    let sub = mosquitto_sub(&mut broker, &topic, PROPERTY_LINE, 3);
    let publish = |args: &[&[&str]]| {
        let mut cmd = broker.cmd("pub", V5);
        run(cmd.args(["-t", &topic, "-q", "1"]).args(args.concat())).assert_ok(b"");
    };
    // The friendly flags; a value may hold '='.
    publish(&[
        &["-m", "flags"],
        &["--user-property", "k=v1", "--user-property", "eq=a=b"],
        &[
            "--user-property",
            "k=v2",
            "--content-type",
            "application/json",
        ],
        &[
            "--message-expiry",
            "3600",
            "--response-topic",
            "replies/flags",
        ],
        &["--correlation-data", "corr-1"],
    ]);
    // mosquitto's -D spelling (the packet's name in any case), and what only it can say.
    publish(&[
        &["-m", "dashed"],
        &["-D", "PUBLISH", "user-property", "k", "v1"],
        &["-D", "publish", "user-property", "k", "v2"],
        &["-D", "PUBLISH", "content-type", "text/plain"],
        &["-D", "PUBLISH", "message-expiry-interval", "7200"],
        &["-D", "PUBLISH", "response-topic", "replies/dashed"],
        &["-D", "PUBLISH", "correlation-data", "corr-2"],
        &["-D", "PUBLISH", "payload-format-indicator", "1"],
    ]);
    // Binary correlation data: 00 01 02 ff.
    publish(&[&["-m", "binary", "--correlation-data-base64", "AAEC/w=="]]);
    let out = sub.finish();
    let mut expected = b"k:v1 eq:a=b k:v2|application/json|replies/flags|corr-1|3600||flags\n\
        k:v1 k:v2|text/plain|replies/dashed|corr-2|7200|1|dashed\n\
        |||"
    .to_vec();
    expected.extend_from_slice(&[0, 1, 2, 0xff]);
    expected.extend_from_slice(b"|||binary\n");
    out.assert_ok(&expected);
}

/// `rr`'s request carries its --user-property, --content-type and --message-expiry with the
/// response topic and correlation data it sets itself (no responder here: exit 6).
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn mosquitto_sub_receives_the_properties_of_an_rr_request() {
    let mut broker = mosquitto(&[]);
    let topic = unique_topic() + "requests";
    let sub = mosquitto_sub(&mut broker, &topic, "%P|%C|%E|%R|%p", 1);
    let args = [
        &["-t", &topic, "-m", "ask", "-e", "replies/me", "-W", "1"][..],
        &["--user-property", "k=v1", "--user-property", "k=v2"],
        &["--content-type", "text/plain", "--message-expiry", "60"],
    ];
    let out = run(broker.cmd("rr", V5).args(args.concat()));
    out.assert_code(6);
    sub.finish()
        .assert_ok(b"k:v1 k:v2|text/plain|60|replies/me|ask\n");
}

// ---------------------------------------------------------------------------------------------
// 3. The broker's limits, from its CONNACK

/// A publish the broker's CONNACK rules out: exit 5, one line naming the limit, and the
/// reference subscriber gets nothing (the marker published next is the first it sees).
#[track_caller]
fn refused_before_sending(config: &str, args: &[&str], error: &str) {
    let mut broker = mosquitto(&[config]);
    let topic = unique_topic() + "limited";
    let sub = mosquitto_sub(&mut broker, &topic, "%p", 1);
    let id = unique_id();
    let out = run(broker
        .cmd("pub", V5)
        .args(["-i", &id, "-t", &topic, "-m", "refused"])
        .args(args));
    let endpoint = format!("127.0.0.1:{}", broker.port(V5));
    out.assert_exact_error(5, &error.replace("ENDPOINT", &endpoint));
    mosquitto_pub(&broker, &topic, &["-m", "marker"]);
    sub.finish().assert_ok(b"marker\n");
    // Mosquitto would have refused it too, by closing the connection: its log shows that
    // mqttcli connected and sent nothing (it had exited before the marker was published).
    let log = broker.log_text();
    assert!(
        log.contains(&format!(" as {id} ")) && !log.contains(&format!("PUBLISH from {id}")),
        "{id} did not connect, or sent a PUBLISH:\n{log}"
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn publish_above_maximum_qos_exits_5_and_sends_nothing() {
    refused_before_sending(
        "max_qos 1",
        &["-q", "2"],
        "mqttcli: error: the broker takes messages at QoS 1 at most (Maximum QoS in its CONNACK): publish with -q 1",
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn retained_publish_without_retain_available_exits_5_and_sends_nothing() {
    refused_before_sending(
        "retain_available false",
        &["-r"],
        "mqttcli: error: the broker keeps no retained messages (Retain Available 0 in its CONNACK): drop -r",
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn publish_above_maximum_packet_size_exits_5_and_sends_nothing() {
    // 1 + 2 (remaining length) + 2 + 29 (test/<16 hex digits>/limited) + 1 (no properties)
    // + 300.
    refused_before_sending(
        "max_packet_size 300",
        &["-m", &"p".repeat(300)],
        "mqttcli: error: 0 of 1 messages written: a packet of 335 bytes exceeds the limit of 300 bytes for ENDPOINT: send a smaller message",
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn topic_alias_above_the_maximum_exits_5_and_sends_nothing() {
    refused_before_sending(
        "max_topic_alias 3",
        &["-D", "PUBLISH", "topic-alias", "4"],
        "mqttcli: error: topic alias 4 is above the broker's Topic Alias Maximum of 3 (in its CONNACK): use 1 to 3, or no alias",
    );
}

/// Within the limits the same broker takes it: a topic alias up to the maximum, QoS up to
/// Maximum QoS, and a stream at QoS 1 through a Receive Maximum of 2 (Mosquitto's
/// max_inflight_messages) all arrive, in order.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(
    no_mosquitto_pub,
    ignore = "needs mosquitto_pub (apt install mosquitto-clients)"
)]
fn publishes_within_the_limits_arrive() {
    let mut broker = mosquitto(&["max_qos 1", "max_topic_alias 3", "max_inflight_messages 2"]);
    let topic = unique_topic() + "within";
    let sub = mosquitto_sub(&mut broker, &topic, "%p", 22);
    run(broker
        .cmd("pub", V5)
        .args(["-t", &topic, "-q", "1", "-m", "aliased"])
        .args(["-D", "PUBLISH", "topic-alias", "3"]))
    .assert_ok(b"");
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let out = crate::common::run_with_timeout(
        broker.cmd("pub", V5).args(["-t", &topic, "-q", "1", "-l"]),
        Some(lines.clone().into_bytes()),
        WAIT,
    );
    out.assert_ok(b"");
    mosquitto_pub(&broker, &topic, &["-m", "marker"]);
    sub.finish()
        .assert_ok(format!("aliased\n{lines}marker\n").as_bytes());
}

// ---------------------------------------------------------------------------------------------
// 4. Message expiry

/// A message published with `--message-expiry 1` while a persistent session is offline is
/// gone when the session comes back after the expiry; one with a long expiry is delivered
/// with what is left of it, and one without expiry is delivered as it was.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn expired_message_never_reaches_an_offline_session() {
    let broker = mosquitto(&[]);
    let topic = unique_topic() + "expiring";
    let id = unique_id();
    let session = |args: &[&str]| {
        let mut cmd = broker.cmd("sub", V5);
        cmd.args(["-c", "-i", &id, "-q", "1", "-t", &topic])
            .args(args);
        cmd
    };
    run(&mut session(&["-E", "-W", "30"])).assert_ok(b"");
    publish(
        &broker,
        V5,
        &topic,
        &["-q", "1", "-m", "expires", "--message-expiry", "1"],
    );
    publish(
        &broker,
        V5,
        &topic,
        &["-q", "1", "-m", "lasts", "--message-expiry", "600"],
    );
    publish(&broker, V5, &topic, &["-q", "1", "-m", "marker"]);
    let published = Instant::now();
    // Mosquitto counts whole seconds: a 1 s expiry has surely passed after 3 s.
    std::thread::sleep(Duration::from_secs(3));
    let out = run(&mut session(&["--json", "-C", "2", "-W", "30"]));
    let waited = published.elapsed().as_secs();
    out.assert_code(0);
    let lines = json_lines(&out);
    let payloads: Vec<&Value> = lines.iter().map(|l| &l["payload"]).collect();
    assert_eq!(
        payloads,
        [&json!("lasts"), &json!("marker")],
        "{}",
        out.dump()
    );
    let left = lines[0]["properties"]["message_expiry_interval"]
        .as_u64()
        .unwrap_or_else(|| panic!("no expiry on 'lasts'\n{}", out.dump()));
    assert!(
        (600 - waited - 2..600 - 2).contains(&left),
        "'lasts' was delivered with {left} s of expiry left after {waited} s offline\n{}",
        out.dump()
    );
    assert_eq!(lines[1]["properties"], json!({}), "{}", out.dump());
}

// ---------------------------------------------------------------------------------------------
// 5. Will delay

/// `-D WILL will-delay-interval 2`: after SIGKILL the broker holds the will for the delay
/// (the session outlives it with -x 60), and the will carries its -D WILL properties.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn will_with_a_delay_arrives_late_after_sigkill() {
    let broker = mosquitto(&[]);
    let t = unique_topic();
    let will_topic = format!("{t}will");
    let mut watcher = json_sub(&broker, &will_topic, 1, &[]);
    let other = format!("{t}other");
    let args = [
        &["-t", &other, "-W", "60", "-x", "60"][..],
        &["--will-topic", &will_topic, "--will-payload", "gone"],
        &["-D", "WILL", "will-delay-interval", "2"],
        &["-D", "WILL", "content-type", "text/plain"],
        &["-D", "WILL", "user-property", "why", "killed"],
    ];
    let dying = subscriber(broker.cmd("sub", V5).args(args.concat()));
    signal(dying.pid(), "KILL");
    let killed = Instant::now();
    watcher.wait_lines(1, WAIT);
    let took = killed.elapsed();
    drop(dying);
    assert!(
        took >= Duration::from_millis(1500),
        "the will arrived {took:?} after SIGKILL, before its 2 s delay"
    );
    let out = watcher.finish();
    out.assert_code(0);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["payload"], "gone", "{}", out.dump());
    assert_eq!(
        lines[0]["properties"],
        json!({"content_type": "text/plain", "user_properties": [["why", "killed"]]}),
        "{}",
        out.dump()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Subscription options, as the broker applies them

/// (payload, retain flag) of each message a `sub --json` printed.
#[track_caller]
fn deliveries(sub: Live) -> Vec<(String, bool)> {
    let out = sub.finish();
    out.assert_code(0);
    json_lines(&out)
        .iter()
        .map(|l| {
            let payload = l["payload"].as_str().unwrap_or_default().to_string();
            (payload, l["retain"] == json!(true))
        })
        .collect()
}

/// Retain handling: `always` (the default) sends the retained message at subscribe, `never`
/// does not; `new` sends it for a new subscription only, not when the session already has it.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn retain_handling_decides_whether_the_retained_message_comes() {
    let broker = mosquitto(&[]);
    let topic = unique_topic() + "retained";
    publish(&broker, V5, &topic, &["-q", "1", "-r", "-m", "kept"]);
    let owned = |s: &str, r: bool| (s.to_string(), r);

    for (args, expected) in [
        (vec![], vec![owned("kept", true), owned("live", false)]),
        (
            vec!["--retain-handling", "always"],
            vec![owned("kept", true), owned("live", false)],
        ),
        (vec!["--retain-handling", "2"], vec![owned("live", false)]),
        (
            vec!["--retain-handling", "never"],
            vec![owned("live", false)],
        ),
    ] {
        let count = expected.len();
        let sub = json_sub(&broker, &topic, count, &args);
        publish(&broker, V5, &topic, &["-q", "1", "-m", "live"]);
        assert_eq!(deliveries(sub), expected, "sub {args:?}");
    }

    // `new`: the first SUBSCRIBE of a persistent session is new, the same one again is not.
    let id = unique_id();
    for (i, expected) in [
        vec![owned("kept", true), owned("live", false)],
        vec![owned("live", false)],
    ]
    .into_iter()
    .enumerate()
    {
        let args = ["-c", "-i", &id, "--retain-handling", "new"];
        let sub = json_sub(&broker, &topic, expected.len(), &args);
        publish(&broker, V5, &topic, &["-q", "1", "-m", "live"]);
        assert_eq!(
            deliveries(sub),
            expected,
            "subscribe #{} of the session",
            i + 1
        );
    }
}

/// Retain as published: a retained message published while subscribed keeps its retain flag
/// for the subscriber that asked, and loses it for one that did not.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn retain_as_published_keeps_the_flag_on_live_messages() {
    let broker = mosquitto(&[]);
    let topic = unique_topic() + "rap";
    let keeps = json_sub(&broker, &topic, 1, &["--retain-as-published"]);
    let clears = json_sub(&broker, &topic, 1, &[]);
    publish(&broker, V5, &topic, &["-q", "1", "-r", "-m", "live"]);
    assert_eq!(deliveries(keeps), [("live".to_string(), true)]);
    assert_eq!(deliveries(clears), [("live".to_string(), false)]);
}

/// No local only drops what the subscribing connection publishes itself, which a `sub` never
/// does (the bit is checked in the SUBSCRIBE's bytes below): Mosquitto takes the option and
/// still delivers other clients' messages.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn no_local_still_delivers_other_clients_messages() {
    let broker = mosquitto(&[]);
    let topic = unique_topic() + "nolocal";
    let sub = json_sub(&broker, &topic, 1, &["--no-local"]);
    publish(
        &broker,
        V5,
        &topic,
        &["-q", "1", "-m", "from another client"],
    );
    assert_eq!(
        deliveries(sub),
        [("from another client".to_string(), false)]
    );
}

// ---------------------------------------------------------------------------------------------
// 7. A scripted broker reads what no broker shows

/// What a CONNECT carried.
#[derive(Debug)]
struct Connect {
    properties: Props,
    /// The will's properties, topic and payload.
    will: Option<(Props, String, Vec<u8>)>,
}

fn decode_connect(packet: &Packet) -> Connect {
    let mut r = Reader::new(packet.body());
    r.take(6); // "MQTT" with its length
    assert_eq!(r.byte(), 5, "protocol level");
    let flags = r.byte();
    r.two(); // keepalive
    let properties = r.properties();
    r.string(); // client id
    let will = (flags & 0x04 != 0).then(|| {
        let props = r.properties();
        (props, r.string(), r.binary())
    });
    Connect { properties, will }
}

/// What a SUBSCRIBE carried: its packet id, properties and (filter, options byte) pairs.
struct Subscribe {
    pkid: u16,
    properties: Props,
    filters: Vec<(String, u8)>,
}

fn decode_subscribe(packet: &Packet) -> Subscribe {
    assert_eq!(packet.0[0], 0x82, "SUBSCRIBE: {:02x?}", packet.0);
    let mut r = Reader::new(packet.body());
    let pkid = r.two();
    let properties = r.properties();
    let mut filters = Vec::new();
    while !r.done() {
        filters.push((r.string(), r.byte()));
    }
    Subscribe {
        pkid,
        properties,
        filters,
    }
}

/// Plays CONNACK (with `connack_properties`), then answers a SUBSCRIBE or UNSUBSCRIBE (all
/// granted) or a QoS 1 PUBLISH and returns the CONNECT and the packets the client sent after it, up to its
/// DISCONNECT or close.
pub(super) fn record(
    conn: &mut Conn,
    connack_properties: &[u8],
) -> Result<(Packet, Vec<Packet>), String> {
    let connect = conn.expect_connect(V5)?;
    conn.connack_v5(false, connack_properties)?;
    let mut seen = Vec::new();
    while let Ok(p) = conn.read() {
        let mut r = Reader::new(p.body());
        match p.kind() {
            0x80 => {
                let s = decode_subscribe(&p);
                let mut ack = s.pkid.to_be_bytes().to_vec();
                ack.push(0);
                ack.extend(s.filters.iter().map(|(_, o)| o & 0x03));
                conn.write(&packet(0x90, &ack))?;
            }
            0xa0 => {
                let pkid = r.two();
                let mut ack = pkid.to_be_bytes().to_vec();
                ack.extend_from_slice(&[0, 0]);
                conn.write(&packet(0xb0, &ack))?;
            }
            0x30 if p.0[0] & 0x06 == 0x02 => {
                let pkid = decode_publish(&p).pkid;
                conn.write(&packet(0x40, &pkid.to_be_bytes()))?;
            }
            0xc0 => conn.write(&[0xd0, 0])?,
            _ => {}
        }
        let end = p.kind() == 0xe0;
        seen.push(p);
        if end {
            break;
        }
    }
    Ok((connect, seen))
}

/// Runs `cmd` against a scripted broker whose CONNACK has `connack_properties`: the run, the
/// CONNECT and what followed it.
fn against_script(
    subcommand: &str,
    args: &[&str],
    connack_properties: &'static [u8],
) -> (Out, Connect, Vec<Packet>) {
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_one(move |conn| record(conn, connack_properties));
    let out = run(at(subcommand, port, V5).args(args));
    let (connect, rest) = played.result(&out);
    (out, decode_connect(&connect), rest)
}

/// The subscription options byte holds QoS, No Local (0x04), Retain As Published (0x08) and
/// Retain Handling (bits 4-5), for every filter; the SUBSCRIBE carries the subscription
/// identifier and the user properties, -D's first, in order.
#[test]
fn subscribe_carries_its_options_and_properties() {
    let args = [
        &["-t", "a/+", "-t", "b", "-q", "1", "-E"][..],
        &[
            "--no-local",
            "--retain-as-published",
            "--retain-handling",
            "never",
        ],
        &["-D", "SUBSCRIBE", "subscription-identifier", "268435455"],
        &["-D", "SUBSCRIBE", "user-property", "k", "v1"],
        &["--user-property", "k=v2", "--user-property", "eq=a=b"],
    ];
    let (out, _, packets) = against_script("sub", &args.concat(), &[]);
    out.assert_ok(b"");
    let s = decode_subscribe(&packets[0]);
    assert_eq!(
        s.properties,
        [
            (0x0B, V::N(268_435_455)),
            (0x26, p("k", "v1")),
            (0x26, p("k", "v2")),
            (0x26, p("eq", "a=b")),
        ]
    );
    // QoS 1 | no local | retain as published | retain handling 2.
    let options = 0x01 | 0x04 | 0x08 | 0x20;
    assert_eq!(s.filters, [("a/+".into(), options), ("b".into(), options)]);

    let handlings = [
        ("0", 0x00),
        ("always", 0x00),
        ("1", 0x10),
        ("new", 0x10),
        ("2", 0x20),
    ];
    for (handling, bits) in handlings {
        let args = ["-t", "x", "-q", "2", "-E", "--retain-handling", handling];
        let (out, _, packets) = against_script("sub", &args, &[]);
        out.assert_ok(b"");
        let s = decode_subscribe(&packets[0]);
        assert_eq!(s.properties, [], "--retain-handling {handling}");
        let expected = [("x".to_string(), 0x02 | bits)];
        assert_eq!(s.filters, expected, "--retain-handling {handling}");
    }
}

/// Without options a v5 SUBSCRIBE is plain: options byte = QoS, no properties.
#[test]
fn subscribe_without_options_is_plain() {
    let (out, _, packets) = against_script("sub", &["-t", "x", "-E"], &[]);
    out.assert_ok(b"");
    let s = decode_subscribe(&packets[0]);
    assert_eq!((s.properties, s.filters), (vec![], vec![("x".into(), 0)]));
}

/// CONNECT's properties as -D CONNECT sets them (user properties in order), and Maximum
/// Packet Size 268435455 when none is asked for: the largest MQTT allows (issue 10: a larger
/// one made strict brokers hang up; rumqttc cannot leave it out without capping what it
/// receives at 10 KiB).
#[test]
fn connect_carries_its_properties() {
    let (out, connect, _) = against_script("pub", &["-t", "t", "-m", "x"], &[]);
    out.assert_ok(b"");
    assert_eq!(connect.properties, [(0x27, V::N(268_435_455))]);
    assert!(connect.will.is_none());

    let args = [
        &["-t", "t", "-m", "x"][..],
        &["-D", "CONNECT", "receive-maximum", "10"],
        &["-D", "CONNECT", "topic-alias-maximum", "5"],
        &["-D", "CONNECT", "request-response-information", "1"],
        &["-D", "CONNECT", "request-problem-information", "0"],
        &["-D", "CONNECT", "maximum-packet-size", "4096"],
        &["-D", "CONNECT", "session-expiry-interval", "90"],
        &["-D", "CONNECT", "user-property", "trace", "a"],
        &["-D", "CONNECT", "user-property", "trace", "b"],
    ];
    let (out, connect, _) = against_script("pub", &args.concat(), &[]);
    out.assert_ok(b"");
    let mut props = connect.properties.clone();
    // The order of distinct properties is rumqttc's; user properties keep theirs (a stable
    // sort).
    props.sort_by_key(|(id, _)| *id);
    assert_eq!(
        props,
        [
            (0x11, V::N(90)),
            (0x17, V::N(0)),
            (0x19, V::N(1)),
            (0x21, V::N(10)),
            (0x22, V::N(5)),
            (0x26, p("trace", "a")),
            (0x26, p("trace", "b")),
            (0x27, V::N(4096)),
        ]
    );
}

/// The will's properties and delay travel in CONNECT's will properties.
#[test]
fn connect_carries_the_wills_properties() {
    let args = [
        &["-t", "t", "-m", "x"][..],
        &["--will-topic", "status/me", "--will-payload", "offline"],
        &["-D", "WILL", "will-delay-interval", "30"],
        &["-D", "WILL", "message-expiry-interval", "600"],
        &["-D", "WILL", "content-type", "text/plain"],
        &["-D", "WILL", "response-topic", "status/reply"],
        &["-D", "WILL", "correlation-data", "c1"],
        &["-D", "WILL", "payload-format-indicator", "1"],
        &["-D", "WILL", "user-property", "k", "v1"],
        &["-D", "WILL", "user-property", "k", "v2"],
    ];
    let (out, connect, _) = against_script("pub", &args.concat(), &[]);
    out.assert_ok(b"");
    let (mut props, topic, payload) = connect.will.expect("a will in CONNECT");
    assert_eq!(
        (topic.as_str(), &payload[..]),
        ("status/me", &b"offline"[..])
    );
    props.sort_by_key(|(id, _)| *id);
    assert_eq!(
        props,
        [
            (0x01, V::N(1)),
            (0x02, V::N(600)),
            (0x03, V::S("text/plain".into())),
            (0x08, V::S("status/reply".into())),
            (0x09, V::B(b"c1".to_vec())),
            (0x18, V::N(30)),
            (0x26, p("k", "v1")),
            (0x26, p("k", "v2")),
        ]
    );
}

/// UNSUBSCRIBE carries its user properties, -D's first, in order.
#[test]
fn unsubscribe_carries_its_user_properties() {
    let args = [
        &["-i", "me", "-t", "a/#"][..],
        &["-D", "UNSUBSCRIBE", "user-property", "k", "v1"],
        &["--user-property", "k=v2"],
    ];
    let (out, _, packets) = against_script("unsub", &args.concat(), &[]);
    out.assert_ok(b"");
    let unsub = &packets[0];
    assert_eq!(unsub.0[0], 0xa2, "UNSUBSCRIBE: {:02x?}", unsub.0);
    let mut r = Reader::new(unsub.body());
    r.two();
    assert_eq!(r.properties(), [(0x26, p("k", "v1")), (0x26, p("k", "v2"))]);
    assert_eq!(r.string(), "a/#");
    assert!(r.done());
}

/// A `sub` that needs what the CONNACK says the broker lacks: exit 5 naming it, and no
/// SUBSCRIBE is sent (the client's next packet is its DISCONNECT).
#[test]
fn subscribe_the_broker_cannot_take_exits_5_before_subscribe() {
    let cases: [(&'static [u8], &[&str], &str); 3] = [
        (
            &[0x28, 0],
            &["-t", "a/+/c"],
            "the broker takes no wildcard subscriptions (Wildcard Subscription Available 0 in its CONNACK): subscribe to exact topics instead of 'a/+/c'",
        ),
        (
            &[0x2A, 0],
            &["-t", "$share/g/a"],
            "the broker has no shared subscriptions (Shared Subscription Available 0 in its CONNACK): '$share/g/a' cannot be subscribed",
        ),
        (
            &[0x29, 0],
            &["-t", "a", "-D", "SUBSCRIBE", "subscription-identifier", "1"],
            "the broker has no subscription identifiers (Subscription Identifier Available 0 in its CONNACK): drop -D SUBSCRIBE subscription-identifier",
        ),
    ];
    for (connack, args, error) in cases {
        let (out, _, packets) = against_script("sub", args, connack);
        out.assert_exact_error(5, &format!("mqttcli: error: {error}"));
        let kinds: Vec<u8> = packets.iter().map(Packet::kind).collect();
        assert_eq!(kinds, [0xe0], "{args:?}: only a DISCONNECT after CONNACK");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Usage errors, word for word

/// `pub -V 5 -t a -m x`: what the usage cases add their mistakes to.
const PUB5: &str = "pub -V 5 -t a -m x";
/// `sub -V 5 -t a`.
const SUB5: &str = "sub -V 5 -t a";

/// Every MQTT 5 usage mistake: exit 2 before connecting, and this exact line. The command is
/// split at spaces (no argument here holds one).
#[test]
fn usage_errors_say_what_to_do() {
    let cases = [
        (
            format!("{PUB5} -D PUBLISH colour red"),
            "-D PUBLISH colour: no such MQTT 5 property: use one of payload-format-indicator, message-expiry-interval, topic-alias, response-topic, correlation-data, user-property, content-type",
        ),
        (
            format!("{PUB5} -D PUBACK content-type x"),
            "-D PUBACK: not a packet that carries properties: use CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT or WILL",
        ),
        (
            format!("{PUB5} -D PUBLISH receive-maximum 5"),
            "-D PUBLISH receive-maximum: a PUBLISH packet cannot carry receive-maximum: it may carry payload-format-indicator, message-expiry-interval, topic-alias, response-topic, correlation-data, user-property, content-type",
        ),
        (
            format!("{SUB5} -D SUBSCRIBE user-property k v -D SUBSCRIBE topic-alias 1"),
            "-D SUBSCRIBE topic-alias: a SUBSCRIBE packet cannot carry topic-alias: it may carry subscription-identifier, user-property",
        ),
        (
            format!("{PUB5} -D CONNECT receive-maximum 0"),
            "-D CONNECT receive-maximum '0' is out of range: give a whole number from 1 to 65535",
        ),
        (
            format!("{PUB5} -D CONNECT receive-maximum 65536"),
            "-D CONNECT receive-maximum '65536' is out of range: give a whole number from 1 to 65535",
        ),
        (
            format!("{PUB5} -D CONNECT receive-maximum ten"),
            "-D CONNECT receive-maximum 'ten' is not a whole number: give one from 1 to 65535",
        ),
        (
            format!("{PUB5} -D PUBLISH message-expiry-interval 4294967296"),
            "-D PUBLISH message-expiry-interval '4294967296' is out of range: give a whole number from 0 to 4294967295",
        ),
        (
            format!("{PUB5} -D PUBLISH payload-format-indicator 2"),
            "-D PUBLISH payload-format-indicator '2' is out of range: give a whole number from 0 to 1",
        ),
        (
            format!("{SUB5} -D SUBSCRIBE subscription-identifier 268435456"),
            "-D SUBSCRIBE subscription-identifier '268435456' is out of range: give a whole number from 1 to 268435455",
        ),
        (
            format!("{PUB5} -D CONNECT maximum-packet-size 0"),
            "-D CONNECT maximum-packet-size '0' is out of range: give a whole number from 1 to 268435455",
        ),
        (
            format!("{PUB5} -D PUBLISH content-type a -D PUBLISH content-type b"),
            "-D PUBLISH content-type is given twice: give it once",
        ),
        (
            format!("{PUB5} -D PUBLISH content-type a --content-type b"),
            "--content-type and -D PUBLISH say the same thing: give one",
        ),
        (
            format!("{PUB5} -x 5 -D CONNECT session-expiry-interval 5"),
            "-x and -D CONNECT session-expiry-interval say the same thing: give one",
        ),
        (
            format!("{SUB5} -D PUBLISH content-type a"),
            "-D PUBLISH: sub sends no PUBLISH: give it to pub or rr",
        ),
        (
            format!("{PUB5} -D SUBSCRIBE subscription-identifier 3"),
            "-D SUBSCRIBE: pub sends no SUBSCRIBE: give it to sub",
        ),
        (
            format!("{SUB5} -D UNSUBSCRIBE user-property k v"),
            "-D UNSUBSCRIBE: sub sends no UNSUBSCRIBE: give it to unsub",
        ),
        (
            format!("{PUB5} -D DISCONNECT user-property k v"),
            "-D DISCONNECT user-property: mqttcli cannot send DISCONNECT properties yet (rumqttc 0.25.1 sends a bare DISCONNECT; bytebeamio/rumqtt#887): leave it out",
        ),
        (
            format!("{SUB5} -D DISCONNECT session-expiry-interval 0"),
            "-D DISCONNECT session-expiry-interval: mqttcli cannot send DISCONNECT properties yet (rumqttc 0.25.1 sends a bare DISCONNECT; bytebeamio/rumqtt#887): leave it out",
        ),
        (
            format!("{PUB5} -D WILL will-delay-interval 3"),
            "-D WILL describes the last-will message: add --will-topic TOPIC",
        ),
        (
            format!("{PUB5} -D PUBLISH user-property k"),
            "-D PUBLISH user-property takes a KEY and a VALUE: -D PUBLISH user-property KEY VALUE",
        ),
        (
            format!("{PUB5} -D PUBLISH content-type a b"),
            "-D PUBLISH content-type takes one VALUE: -D PUBLISH content-type VALUE",
        ),
        (
            format!("{PUB5} -D PUBLISH response-topic a/#"),
            "-D PUBLISH response-topic: topic 'a/#' contains a wildcard (+ or #): publish to a concrete topic such as sensors/1/temp",
        ),
        (
            format!("{PUB5} --user-property k"),
            "invalid value 'k' for '--user-property <KEY=VALUE>': 'k' is not KEY=VALUE: write the user property as key=value",
        ),
        (
            format!("{SUB5} --user-property k"),
            "invalid value 'k' for '--user-property <KEY=VALUE>': 'k' is not KEY=VALUE: write the user property as key=value",
        ),
        (
            format!("{SUB5} --retain-handling sometimes"),
            "invalid value 'sometimes' for '--retain-handling <WHEN>': 'sometimes' is not a retain handling: use 0 (always), 1 (new) or 2 (never)",
        ),
        (
            "rr -t a -m x -D PUBLISH correlation-data c".to_string(),
            "rr sets the request's response topic (-e) and correlation data itself: drop -D PUBLISH response-topic/correlation-data",
        ),
        // MQTT 5 only, under 3.1.1 (given, or the default).
        (
            "pub -V 311 -t a -m x -D PUBLISH content-type x".to_string(),
            "-D PUBLISH content-type x sets an MQTT 5 property: add -V 5",
        ),
        (
            "sub -t a -D CONNECT user-property k v".to_string(),
            "-D CONNECT user-property k v sets an MQTT 5 property: add -V 5",
        ),
    ];
    for (args, line) in cases {
        let out = run(mqttcli().args(args.split(' ')));
        out.assert_exact_error(2, &format!("mqttcli: error: {line}"));
    }
    let v5_flags = [
        "pub -m x --user-property k=v",
        "pub -m x --content-type t",
        "pub -m x --message-expiry 5",
        "pub -m x --response-topic r",
        "pub -m x --correlation-data c",
        "pub -m x --correlation-data-base64 AAE=",
        "sub --no-local",
        "sub --retain-as-published",
        "sub --retain-handling never",
        "sub --user-property k=v",
        "unsub -i me --user-property k=v",
    ];
    for case in v5_flags {
        let (subcommand, rest) = case.split_once(' ').unwrap();
        let flag = rest.split(' ').find(|w| w.starts_with("--")).unwrap();
        let out = run(mqttcli()
            .args([subcommand, "-V", "311", "-t", "a"])
            .args(rest.split(' ')));
        out.assert_exact_error(
            2,
            &format!("mqttcli: error: {flag} is an MQTT 5 feature: add -V 5"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 9. -V 5 against a broker that speaks only 3.1.1

/// A 3.1.1-only broker (Aedes) hangs up on an MQTT 5 CONNECT: the error names -V 311, exit 3.
#[test]
fn v5_against_a_broker_that_hangs_up_names_v311() {
    for subcommand in ["pub", "sub"] {
        let broker = FakeBroker::bind();
        let port = broker.port();
        let played = broker.serve_one(|conn| conn.expect_connect(V5).map(drop));
        let mut cmd = at(subcommand, port, V5);
        cmd.args(["-t", "t", "--no-reconnect"]);
        if subcommand == "pub" {
            cmd.args(["-m", "x"]);
        }
        let out = run(&mut cmd);
        played.result(&out);
        out.assert_exact_error(
            3,
            &format!(
                "mqttcli: error: 127.0.0.1:{port} closed the connection before CONNACK: if the broker speaks only MQTT 3.1.1, use -V 311; if it is a TLS port, add --tls or --cafile FILE"
            ),
        );
    }
}

/// One that answers with 3.1.1's "unacceptable protocol version" (CONNACK code 1, without
/// the property length MQTT 5 expects): rumqttc 0.25.1 waits for the rest of that CONNACK,
/// so the refusal is seen as the broker hanging up (Aedes closes at once) or as no answer
/// within --connect-timeout (a broker that keeps the connection open). Both name -V 311,
/// exit 3; the same broker at 3.1.1 takes the connection.
#[test]
fn v5_against_a_broker_that_refuses_the_version_names_v311() {
    for hang_up in [true, false] {
        let broker = FakeBroker::bind();
        let port = broker.port();
        let played = broker.serve_one(move |conn| {
            conn.expect_connect(V5)?;
            conn.write(&packet(0x20, &[0, 1]))?;
            if !hang_up {
                conn.until_disconnect()?;
            }
            Ok(())
        });
        let out = run(at("pub", port, V5).args(["-t", "t", "-m", "x", "--connect-timeout", "2s"]));
        played.result(&out);
        let endpoint = format!("127.0.0.1:{port}");
        if hang_up {
            out.assert_exact_error(
                3,
                &format!("mqttcli: error: {endpoint} closed the connection before CONNACK: if the broker speaks only MQTT 3.1.1, use -V 311; if it is a TLS port, add --tls or --cafile FILE"),
            );
        } else {
            // rumqttc's own connection timeout and mqttcli's end at the same time: only
            // mqttcli's says " within 2 s".
            out.assert_code(3).assert_stdout(b"");
            let (start, end) = (
                format!("mqttcli: error: no answer from {endpoint}"),
                ": check the host and port, or raise --connect-timeout; if the broker speaks only MQTT 3.1.1, use -V 311\n",
            );
            assert!(
                out.stderr.starts_with(&start)
                    && out.stderr.ends_with(end)
                    && out.stderr.lines().count() == 1,
                "{}",
                out.dump()
            );
        }
    }
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_one(|conn| {
        conn.expect_connect(V311)?;
        conn.connack(V311, false)?;
        conn.until_disconnect()
    });
    let out = run(at("pub", port, V311).args(["-t", "t", "-m", "x"]));
    assert!(played.result(&out), "pub -V 311 ended with DISCONNECT");
    out.assert_ok(b"");
}

// ---------------------------------------------------------------------------------------------
// A DISCONNECT from the broker in its short forms (MQTT 5, 3.14.2.1)

/// A broker's DISCONNECT after SUBACK, as `bytes`, to `sub -V 5 --no-reconnect`.
fn disconnect_after_suback(bytes: &'static [u8]) -> Out {
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_one(move |c| {
        c.expect_connect(V5)?;
        c.connack(V5, false)?;
        let subscribe = c.read()?;
        let id = &subscribe.body()[..2];
        c.write(&packet(0x90, &[id[0], id[1], 0, 0]))?;
        c.write(bytes)?;
        Ok(())
    });
    let out = run(at("sub", port, V5).args(["-t", "t", "-W", "30", "--no-reconnect"]));
    played.result(&out);
    out
}

/// Mosquitto writes a DISCONNECT that has a reason and no properties without a property length:
/// 2.0.11 for a topic alias it refuses (`e0 01 94`, seen here), later releases also when another
/// client takes the session over (`e0 01 8e`). `sub` names the reason and exits with its code,
/// 5 for a refusal, 3 otherwise; rumqttc 0.25.1 lost the reason and reported the broker to have
/// closed the connection (exit 3 either way).
#[test]
fn a_disconnect_without_a_property_length_is_named() {
    disconnect_after_suback(&[0xE0, 1, 0x8E]).assert_error(
        3,
        &["ended the connection: session taken over (0x8e): another client connected with the same client id (-i)"],
    );
    disconnect_after_suback(&[0xE0, 1, 0x94])
        .assert_error(5, &["ended the connection: topic alias invalid (0x94)"]);
}

/// A DISCONNECT with nothing after its fixed header (`e0 00`) is a normal disconnection.
#[test]
fn a_disconnect_without_a_reason_code_is_a_normal_disconnection() {
    disconnect_after_suback(&[0xE0, 0])
        .assert_error(3, &["ended the connection: normal disconnection (0x00)"]);
}

/// Without -M, an MQTT 5 stream keeps at most 100 QoS 1 messages unacknowledged, as under 3.1.1,
/// whatever the broker's Receive Maximum allows (65 535 here). rumqttc's MQTT 5 event loop takes
/// the broker's figure instead, and fills a slot for each up front: 14 MB of every MQTT 5
/// connection's memory.
#[test]
fn a_v5_stream_keeps_100_in_flight_by_default() {
    const LINES: usize = 150;
    let broker = FakeBroker::bind();
    let port = broker.port();
    let played = broker.serve_one(|c| {
        c.expect_connect(V5)?;
        c.connack_v5(false, &[0x21, 0xFF, 0xFF])?;
        let mut ids = Vec::new();
        let publish = |c: &mut Conn| -> Result<u16, String> {
            loop {
                let p = c.read()?;
                if p.kind() == 0x30 {
                    return Ok(decode_publish(&p).pkid);
                }
            }
        };
        while ids.len() < 100 {
            ids.push(publish(c)?);
        }
        // The window is full: the client writes nothing more until an acknowledgement. It
        // writes all it may at once, so a 101st would be here well within the wait.
        let s = c.stream();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let early = c.read().ok().map(|p| p.0);
        c.stream()
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        while ids.len() < LINES {
            let id = ids[ids.len() - 100];
            c.write(&packet(0x40, &[(id >> 8) as u8, id as u8]))?;
            ids.push(publish(c)?);
        }
        for id in &ids[ids.len() - 100..] {
            c.write(&packet(0x40, &[(id >> 8) as u8, *id as u8]))?;
        }
        c.until_disconnect()?;
        Ok(early)
    });
    let lines: String = (0..LINES).map(|i| format!("m{i}\n")).collect();
    let out = run_with_timeout(
        at("pub", port, V5).args(["-t", "t", "-q", "1", "-l"]),
        Some(lines.into_bytes()),
        WAIT,
    );
    let early = played.result(&out);
    out.assert_code(0);
    assert_eq!(early, None, "a 101st packet before any acknowledgement");
}
