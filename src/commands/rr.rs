//! `mqttcli rr`: request/response over MQTT 5, as `mosquitto_rr`. Subscribe to the response
//! topic first, publish the request with that response topic and fresh correlation data, print
//! the first response whose correlation data matches (as `sub` prints a message), disconnect.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use crate::connection::{Event, Message, Properties, Qos, Session, Settings, Subscription, Wait};
use crate::exit::{fail, Exit};
use crate::output::{self, Format};
use crate::payload;
use crate::signals::Interrupt;

pub struct Options {
    pub request_topic: String,
    /// The topic the responder is asked to answer on; None: a random one under mqttcli/rr/.
    pub response_topic: Option<String>,
    pub payload: payload::Source,
    /// Of the request and of the response subscription.
    pub qos: Qos,
    /// The request's MQTT 5 properties but for the response topic and correlation data.
    pub properties: Properties,
    /// `-W`: exit 6 if no response came by then.
    pub timeout: Option<Duration>,
    pub format: Format,
}

pub async fn run(opts: Options, settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    let request_topic = opts.request_topic;
    let response_topic = opts.response_topic.unwrap_or_else(|| {
        format!(
            "mqttcli/rr/{}",
            Alphanumeric.sample_string(&mut rand::rng(), 16)
        )
    });
    let payload = opts.payload.load().await?.render(0);
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let timed_out = |what: &str| {
        fail(
            Exit::Timeout,
            format!(
                "{what} within {} (-W): is a responder subscribed to '{request_topic}'?",
                crate::duration::display(opts.timeout.unwrap_or_default())
            ),
        )
    };

    let mut session = match Session::open(&settings, &mut interrupt, deadline).await? {
        Wait::Ready(s) => s,
        Wait::Interrupted => return Ok(Exit::Interrupted),
        Wait::Timeout => return Err(timed_out("not even connected")),
    };

    // Subscribe first, so a quick responder's answer cannot arrive before we listen.
    let filters = [Subscription::new(response_topic.clone(), opts.qos)];
    match session
        .subscribe_and_wait(&filters, deadline, &mut interrupt, |ev| {
            tracing::debug!(?ev, "event before the SUBACK")
        })
        .await?
    {
        Wait::Ready(codes) => {
            if let Some(Err(reason)) = codes.into_iter().next() {
                return Err(fail(
                    Exit::Rejected,
                    format!(
                        "the broker refused the subscription to the response topic '{response_topic}': {reason}: choose another with -e"
                    ),
                ));
            }
        }
        Wait::Timeout => return Err(timed_out("no SUBACK for the response topic")),
        Wait::Interrupted => {
            let _ = session.close().await;
            return Ok(Exit::Interrupted);
        }
    }
    tracing::debug!("SUBACK received: subscribed to '{response_topic}'");
    let correlation = Bytes::from(Alphanumeric.sample_string(&mut rand::rng(), 16));
    let properties = Properties {
        response_topic: Some(response_topic.clone()),
        correlation_data: Some(correlation.clone()),
        ..opts.properties
    };
    session
        .publish_with(&request_topic, opts.qos, false, payload, properties)
        .await?;
    let response = loop {
        match session.next(deadline, &mut interrupt).await? {
            Wait::Ready(Event::PublishRefused { reason, .. }) => {
                return Err(fail(
                    Exit::Rejected,
                    format!("the broker refused the request to '{request_topic}': {reason}"),
                ));
            }
            Wait::Ready(Event::Message(m)) if m.topic == response_topic => {
                let matches = m
                    .properties
                    .as_ref()
                    .and_then(|p| p.correlation_data.as_ref())
                    == Some(&correlation);
                if matches {
                    break m;
                }
                tracing::debug!(
                    "ignoring a message on '{response_topic}' without our correlation data"
                );
                if let Some(ack) = m.ack {
                    session.ack(ack).await?;
                }
            }
            Wait::Ready(Event::Message(Message { ack: Some(ack), .. })) => session.ack(ack).await?,
            Wait::Ready(_) => {}
            Wait::Timeout => return Err(timed_out("no response")),
            Wait::Interrupted => {
                let _ = session.close().await;
                return Ok(Exit::Interrupted);
            }
        }
    };

    let mut printer = output::stdout_printer(opts.format);
    let printed = printer.print(&response).and_then(|()| printer.flush());
    // Acknowledged once written, as sub does.
    if let (Ok(()), Some(ack)) = (&printed, response.ack) {
        session.ack(ack).await?;
    }
    session.close().await?;
    match printed {
        Ok(()) => Ok(Exit::Success),
        Err(e) => output::write_failed(e).map(|()| Exit::Success),
    }
}
