//! `check --probe`: on a connection of its own, asks the broker what it allows (QoS 2,
//! wildcard and shared subscriptions, retained messages), finds the largest payload it passes
//! on, and keeps the limits an MQTT 5 broker states in its CONNACK. A finding that fails is an
//! answer, not an error: the probe always completes, and the check's exit code stands.

use std::time::Duration;

use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use super::exchange::{subscribe, unsubscribe, Halt};
use super::report::{bytes_text, Finding, Probe};
use super::Options;
use crate::connection::{self, BrokerLimits, Event, Qos, Session, Settings, Wait};
use crate::exit::{exit_for, Exit};
use crate::signals::Interrupt;

/// The most a finding waits, whatever -W says: a broker that will not pass a message on
/// mostly stays silent, and each of the probe's findings would otherwise cost a whole -W.
const PROBE_WAIT: Duration = Duration::from_secs(3);
/// 1 KiB ..= 1 MiB, as powers of two.
pub(super) const PAYLOAD_SIZES: std::ops::RangeInclusive<u32> = 10..=20;

/// A probe connection, opened again after the broker drops it (some answer a probe that way).
struct ProbeLink<'a> {
    settings: &'a Settings,
    link: Option<Session>,
    /// What the first probe connection's CONNACK announced (MQTT 5; None under 3.1.1).
    limits: Option<BrokerLimits>,
}

impl ProbeLink<'_> {
    /// The connection, opened if it is not.
    async fn get(&mut self, interrupt: &mut Interrupt) -> Result<&mut Session, Halt> {
        if self.link.is_none() {
            let Wait::Ready(session) = Session::open(self.settings, interrupt, None).await? else {
                return Err(Halt::Interrupted);
            };
            if self.limits.is_none() {
                self.limits = session.limits.clone();
            }
            self.link = Some(session);
        }
        Ok(self.link.as_mut().expect("just connected"))
    }

    fn lost(&mut self) {
        self.link = None;
    }

    /// After `e`: opened again next time if the connection is gone, whether it was lost
    /// (exit 3) or ended by the broker refusing what the probe tried (an MQTT 5 DISCONNECT
    /// such as "QoS not supported", exit 5).
    fn failed(&mut self, e: &anyhow::Error) {
        if exit_for(e) == Exit::Unreachable || self.link.as_ref().is_some_and(Session::gone) {
            self.lost();
        }
    }
}

pub(super) async fn probe(
    opts: &Options,
    settings: &Settings,
    base: &str,
    interrupt: &mut Interrupt,
) -> Probe {
    let wait = opts.timeout.min(PROBE_WAIT);
    let mut conn = ProbeLink {
        settings,
        link: None,
        limits: None,
    };
    let mut findings = Vec::new();
    let qos1 = Qos::AtLeastOnce;

    let t = format!("{base}/qos2");
    let f = delivery(&mut conn, &t, &t, Qos::ExactlyOnce, false, wait, interrupt).await;
    findings.push(yes_no("qos2", "QoS 2", f, |m| {
        (m.qos == Qos::ExactlyOnce)
            .then_some(())
            .ok_or(format!("delivered at QoS {}", m.qos))
    }));

    // (key, label, filter, topic). That the message arrives at all is the answer: unlike QoS 2
    // and retained messages, there is nothing about it to judge.
    let subscriptions = [
        (
            "wildcard_subscriptions",
            "wildcard subscriptions",
            format!("{base}/wild/+/#"),
            format!("{base}/wild/a/b"),
        ),
        (
            "shared_subscriptions",
            "shared subscriptions",
            format!("$share/mqttcli-check/{base}/shared"),
            format!("{base}/shared"),
        ),
    ];
    for (key, label, filter, topic) in subscriptions {
        let f = delivery(&mut conn, &filter, &topic, qos1, false, wait, interrupt).await;
        findings.push(yes_no(key, label, f, |_| Ok(())));
    }

    let t = format!("{base}/retained");
    let f = delivery(&mut conn, &t, &t, qos1, true, wait, interrupt).await;
    let retained = yes_no("retained_messages", "retained messages", f, |m| {
        m.retain
            .then_some(())
            .ok_or("delivered, but not as a retained message".to_string())
    });
    // Clear what a broker that does retain now holds. Not on a broker that refused it: one
    // without retained messages may close the connection at a retained publish, which would
    // spoil the next finding.
    if retained.allowed == Some(true) {
        if let Ok(link) = conn.get(interrupt).await {
            let cleared = match link.publish(&t, qos1, true, Bytes::new()).await {
                Ok(()) => acked(link, Instant::now() + wait, interrupt).await,
                Err(e) => Err(Halt::Error(e)),
            };
            if let Err(Halt::Error(e)) = &cleared {
                conn.failed(e);
            }
        }
    }
    findings.push(retained);

    findings.push(largest_payload(&mut conn, &format!("{base}/size"), wait, interrupt).await);

    if let Some(link) = conn.link.take() {
        let _ = link.close().await;
    }
    Probe {
        findings,
        limits: conn.limits,
    }
}

/// What a probe's delivery test saw.
enum Delivery {
    Delivered(connection::Message),
    NotDelivered(String),
}

/// Subscribe to `filter`, publish to `topic` (retained first and subscribed after, if
/// `retain`), and see whether the message comes back; unsubscribes afterwards.
#[allow(clippy::too_many_arguments)]
async fn delivery(
    conn: &mut ProbeLink<'_>,
    filter: &str,
    topic: &str,
    qos: Qos,
    retain: bool,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Delivery {
    let payload = Bytes::from(format!(
        "mqttcli probe {}",
        Alphanumeric.sample_string(&mut rand::rng(), 8)
    ));
    let result: Result<Delivery, Halt> = async {
        let link = conn.get(interrupt).await?;
        if retain {
            link.publish(topic, qos, true, payload.clone()).await?;
            if let Some(refused) = acked(link, Instant::now() + wait, interrupt).await? {
                return Ok(Delivery::NotDelivered(refused));
            }
        }
        match subscribe(link, filter, qos, wait, interrupt).await {
            Ok(_) => {}
            Err(Halt::Error(e)) if exit_for(&e) == Exit::Rejected => {
                return Ok(Delivery::NotDelivered(e.to_string()))
            }
            Err(e) => return Err(e),
        }
        if !retain {
            link.publish(topic, qos, false, payload.clone()).await?;
        }
        let deadline = Instant::now() + wait;
        let found = loop {
            match link.next(Some(deadline), interrupt).await? {
                Wait::Ready(Event::Message(m)) if m.payload == payload => {
                    break Delivery::Delivered(m)
                }
                Wait::Ready(Event::PublishRefused { reason, .. }) => {
                    break Delivery::NotDelivered(format!("publish refused: {reason}"))
                }
                Wait::Ready(_) => {}
                Wait::Timeout => {
                    break Delivery::NotDelivered(format!(
                        "nothing came back within {}",
                        crate::duration::display(wait)
                    ))
                }
                Wait::Interrupted => return Err(Halt::Interrupted),
            }
        };
        let _ = unsubscribe(link, filter, wait, interrupt).await;
        Ok(found)
    }
    .await;
    match result {
        Ok(d) => d,
        Err(Halt::Interrupted) => Delivery::NotDelivered("interrupted".into()),
        Err(Halt::Error(e)) => {
            conn.failed(&e);
            Delivery::NotDelivered(format!("{e:#}"))
        }
    }
}

/// Waits for the acknowledgement of one publish: `Some(reason)` if the broker refused it.
async fn acked(
    link: &mut Session,
    deadline: Instant,
    interrupt: &mut Interrupt,
) -> Result<Option<String>, Halt> {
    loop {
        match link.next(Some(deadline), interrupt).await? {
            Wait::Ready(Event::Acked { .. }) => return Ok(None),
            Wait::Ready(Event::PublishRefused { reason, .. }) => {
                return Ok(Some(format!("publish refused: {reason}")))
            }
            Wait::Ready(_) => {}
            Wait::Timeout => return Ok(Some("no acknowledgement".into())),
            Wait::Interrupted => return Err(Halt::Interrupted),
        }
    }
}

fn yes_no(
    key: &'static str,
    label: &'static str,
    d: Delivery,
    judge: impl Fn(&connection::Message) -> Result<(), String>,
) -> Finding {
    let (allowed, note) = match d {
        Delivery::Delivered(m) => match judge(&m) {
            Ok(()) => (true, String::new()),
            Err(note) => (false, note),
        },
        Delivery::NotDelivered(note) => (false, note),
    };
    Finding {
        key,
        label,
        allowed: Some(allowed),
        value: None,
        note,
    }
}

/// Doubles the payload from 1 KiB to 1 MiB until one does not come back.
async fn largest_payload(
    conn: &mut ProbeLink<'_>,
    topic: &str,
    wait: Duration,
    interrupt: &mut Interrupt,
) -> Finding {
    let mut largest = None;
    let mut note = "the largest tried".to_string();
    for exp in PAYLOAD_SIZES {
        let size = 1usize << exp;
        let payload = Bytes::from(vec![b'x'; size]);
        let result: Result<Option<String>, Halt> = async {
            let link = conn.get(interrupt).await?;
            if exp == *PAYLOAD_SIZES.start() {
                subscribe(link, topic, Qos::AtLeastOnce, wait, interrupt).await?;
            }
            link.publish(topic, Qos::AtLeastOnce, false, payload.clone())
                .await?;
            let deadline = Instant::now() + wait;
            loop {
                match link.next(Some(deadline), interrupt).await? {
                    Wait::Ready(Event::Message(m)) if m.payload.len() == size => return Ok(None),
                    Wait::Ready(Event::PublishRefused { reason, .. }) => {
                        return Ok(Some(format!("publish refused: {reason}")))
                    }
                    Wait::Ready(_) => {}
                    Wait::Timeout => {
                        return Ok(Some(format!(
                            "did not come back within {}",
                            crate::duration::display(wait)
                        )))
                    }
                    Wait::Interrupted => return Err(Halt::Interrupted),
                }
            }
        }
        .await;
        let why = match result {
            Ok(None) => {
                largest = Some(size as u64);
                continue;
            }
            Ok(Some(why)) => why,
            Err(Halt::Interrupted) => "interrupted".to_string(),
            Err(Halt::Error(e)) => {
                conn.failed(&e);
                format!("{e:#}")
            }
        };
        note = format!("{} failed: {why}", bytes_text(size as u64));
        break;
    }
    Finding {
        key: "largest_payload",
        label: "largest payload",
        allowed: None,
        value: largest,
        note,
    }
}
