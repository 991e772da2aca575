//! `mqttcli rr` against a responder that the test runs: a small MQTT 5 client (rumqttc, which
//! mqttcli itself uses) that answers each request on its response topic with its correlation
//! data, after two decoys on the same topic that `rr` must ignore: one without correlation data
//! and one with someone else's.

use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions};
use serde_json::Value;

use crate::common::broker::free_port;
use crate::common::{mqttcli, run, unique_id, unique_topic, Broker, Proto};
use Proto::V5;

/// For the responder to subscribe, and for a request to reach it.
const WAIT: Duration = Duration::from_secs(30);

/// How the responder answers each request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `reply to PAYLOAD` with the request's correlation data.
    Reply,
    /// Two decoys on the response topic (no correlation data; another request's), then the
    /// reply.
    DecoysThenReply,
    /// The two decoys only.
    DecoysOnly,
}

/// What the responder saw of one request.
#[derive(Debug)]
pub(crate) struct Request {
    payload: Bytes,
    response_topic: Option<String>,
    correlation: Option<Bytes>,
}

/// An MQTT 5 client on its own thread that answers requests on `topic`. Disconnects on drop.
pub(crate) struct Responder {
    client: Client,
    requests: Receiver<Request>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Connects, subscribes to `topic` and returns once the broker acknowledged that; then
    /// answers each request as `answer` says.
    pub(crate) fn start(port: u16, topic: &str, answer: Answer) -> Responder {
        let mut options = MqttOptions::new(unique_id(), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut connection) = Client::new(options, 16);
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        let (ready_tx, ready_rx) = mpsc::channel();
        let (req_tx, requests) = mpsc::channel();
        let replier = client.clone();
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                let packet = match event {
                    Ok(Event::Incoming(p)) => p,
                    Ok(_) => continue,
                    // Our DISCONNECT on drop, or the broker going away.
                    Err(_) => return,
                };
                match packet {
                    Packet::SubAck(_) => {
                        let _ = ready_tx.send(());
                    }
                    Packet::Publish(p) => {
                        let props = p.properties.unwrap_or_default();
                        let request = Request {
                            payload: p.payload.clone(),
                            response_topic: props.response_topic.clone(),
                            correlation: props.correlation_data.clone(),
                        };
                        if let Some(reply_to) = &props.response_topic {
                            let send = |payload: Vec<u8>, correlation: Option<Bytes>| {
                                let properties = PublishProperties {
                                    correlation_data: correlation,
                                    ..PublishProperties::default()
                                };
                                replier
                                    .publish_with_properties(
                                        reply_to.clone(),
                                        QoS::AtLeastOnce,
                                        false,
                                        payload,
                                        properties,
                                    )
                                    .expect("queue a reply");
                            };
                            if answer != Answer::Reply {
                                send(b"decoy without correlation data".to_vec(), None);
                                send(
                                    b"decoy for another request".to_vec(),
                                    Some(Bytes::from_static(b"someone-elses-id")),
                                );
                            }
                            if answer != Answer::DecoysOnly {
                                let mut reply = b"reply to ".to_vec();
                                reply.extend_from_slice(&p.payload);
                                send(reply, props.correlation_data.clone());
                            }
                        }
                        if req_tx.send(request).is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("the responder's SUBACK within 30 s");
        Responder {
            client,
            requests,
            thread: Some(thread),
        }
    }

    /// The next request the responder saw.
    #[track_caller]
    pub(crate) fn request(&self) -> Request {
        self.requests
            .recv_timeout(WAIT)
            .expect("a request reached the responder within 30 s")
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `mqttcli rr -h 127.0.0.1 -p PORT` (MQTT 5 is rr's default: no -V).
fn rr_at(port: u16) -> std::process::Command {
    let mut cmd = mqttcli();
    cmd.args(["rr", "-h", "127.0.0.1", "-p", &port.to_string()]);
    cmd
}

#[track_caller]
pub(crate) fn assert_request(req: &Request, payload: &[u8]) -> (String, Bytes) {
    assert_eq!(req.payload, payload, "{req:?}");
    let topic = req.response_topic.clone().expect("a response topic");
    let correlation = req.correlation.clone().expect("correlation data");
    assert_eq!(correlation.len(), 16, "{req:?}");
    assert!(correlation.iter().all(u8::is_ascii_alphanumeric), "{req:?}");
    (topic, correlation)
}

#[test]
fn rr_prints_the_response_with_our_correlation_data() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let topic = unique_topic() + "service";
    let responder = Responder::start(port, &topic, Answer::DecoysThenReply);
    // -d: rr says on stderr that it skipped the decoys.
    let out = run(rr_at(port).args(["-t", &topic, "-m", "ping", "-W", "30s", "-d"]));
    out.assert_ok(b"reply to ping\n");
    let (response_topic, _) = assert_request(&responder.request(), b"ping");
    let suffix = response_topic
        .strip_prefix("mqttcli/rr/")
        .expect("default response topic");
    assert!(suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_alphanumeric()));
    let ignored = format!("ignoring a message on '{response_topic}' without our correlation data");
    assert_eq!(
        out.stderr.lines().filter(|l| l.contains(&ignored)).count(),
        2,
        "both decoys ignored:\n{}",
        out.stderr
    );
}

#[test]
fn rr_each_request_has_fresh_correlation_data() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let topic = unique_topic() + "service";
    let responder = Responder::start(port, &topic, Answer::Reply);
    let mut seen = Vec::new();
    for n in 0..2 {
        let msg = format!("n={n}");
        run(rr_at(port).args(["-t", &topic, "-m", &msg, "-W", "30s"]))
            .assert_ok(format!("reply to {msg}\n").as_bytes());
        seen.push(assert_request(&responder.request(), msg.as_bytes()));
    }
    assert_ne!(seen[0].0, seen[1].0, "a fresh response topic each run");
    assert_ne!(seen[0].1, seen[1].1, "fresh correlation data each run");
}

#[test]
fn rr_response_topic_verbose_and_json() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let topic = unique_topic() + "service";
    let reply_topic = unique_topic() + "replies/me";
    let responder = Responder::start(port, &topic, Answer::DecoysThenReply);

    let out = run(rr_at(port).args([
        "-t",
        &topic,
        "-e",
        &reply_topic,
        "-m",
        "v",
        "-v",
        "-W",
        "30s",
    ]));
    out.assert_ok(format!("{reply_topic} reply to v\n").as_bytes());
    let (response_topic, _) = assert_request(&responder.request(), b"v");
    assert_eq!(response_topic, reply_topic);

    let out = run(rr_at(port).args([
        "-t",
        &topic,
        "-e",
        &reply_topic,
        "-m",
        "j",
        "--json",
        "-q",
        "1",
        "-W",
        "30s",
    ]));
    out.assert_code(0);
    let (_, correlation) = assert_request(&responder.request(), b"j");
    let text = out.stdout_str();
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["topic"], reply_topic.as_str());
    assert_eq!(v["payload"], "reply to j");
    assert_eq!(v["encoding"], "utf8");
    assert_eq!(v["qos"], 1);
    assert_eq!(v["retain"], false);
    assert_eq!(
        v["properties"]["correlation_data"],
        std::str::from_utf8(&correlation).unwrap()
    );
}

#[test]
fn rr_request_payload_from_a_file_and_empty() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let topic = unique_topic() + "service";
    let responder = Responder::start(port, &topic, Answer::Reply);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.bin");
    std::fs::write(&file, b"\x00bin\xff").unwrap();
    let out = run(rr_at(port).args(["-t", &topic, "-f", file.to_str().unwrap(), "-W", "30s"]));
    out.assert_ok(b"reply to \x00bin\xff\n");
    assert_request(&responder.request(), b"\x00bin\xff");

    let out = run(rr_at(port).args(["-t", &topic, "-n", "-N", "-W", "30s"]));
    out.assert_ok(b"reply to ");
    assert_request(&responder.request(), b"");
}

#[test]
fn rr_times_out_without_a_responder_exit_6() {
    let broker = Broker::start();
    let topic = unique_topic() + "nobody";
    let out = run(rr_at(broker.port(V5)).args(["-t", &topic, "-m", "anyone?", "-W", "2s"]));
    out.assert_exact_error(
        6,
        &format!(
            "mqttcli: error: no response within 2s (-W): is a responder subscribed to '{topic}'?"
        ),
    );
}

/// A responder that answers only with decoys is no answer: rr ignores both and times out.
#[test]
fn rr_ignores_replies_without_its_correlation_data_until_the_timeout() {
    let broker = Broker::start();
    let port = broker.port(V5);
    let topic = unique_topic() + "service";
    let responder = Responder::start(port, &topic, Answer::DecoysOnly);
    let out = run(rr_at(port).args(["-t", &topic, "-m", "q", "-W", "8s", "-d"]));
    out.assert_code(6);
    out.assert_stdout(b"");
    let (response_topic, _) = assert_request(&responder.request(), b"q");
    let lines: Vec<&str> = out.stderr.lines().collect();
    let ignored = format!("ignoring a message on '{response_topic}' without our correlation data");
    assert_eq!(
        lines.iter().filter(|l| l.contains(&ignored)).count(),
        2,
        "both decoys seen and ignored within -W:\n{}",
        out.stderr
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("mqttcli: error: no response within 8s (-W): is a responder subscribed to '{topic}'?").as_str()),
        "{}",
        out.stderr
    );
}

#[test]
fn rr_refuses_mqtt_311_as_a_usage_error() {
    // Refused before connecting: nothing listens on the port.
    let port = free_port();
    for v in ["311", "mqttv311"] {
        let out = run(rr_at(port).args(["-V", v, "-t", "a", "-m", "x"]));
        out.assert_exact_error(
            2,
            "mqttcli: error: rr needs MQTT 5: the response topic and correlation data are MQTT 5 properties: use -V 5 (rr speaks MQTT 5 unless -V or the profile's protocol says otherwise)",
        );
    }
}

#[test]
fn rr_needs_a_topic() {
    let out = run(rr_at(free_port()).args(["-m", "x"]));
    out.assert_exact_error(
        2,
        "mqttcli: error: no topic to send the request to: add -t TOPIC (or a path to -L's URL)",
    );
}
