//! `mqttcli rr`: request/response over MQTT 5, as `mosquitto_rr`. Subscribe to the response
//! topic first, publish the request with that response topic and fresh correlation data, print
//! the first response whose correlation data matches (as `sub` prints a message), disconnect.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use rand::distr::{Alphanumeric, SampleString};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::cli::{ConnArgs, OutputArgs, Protocol};
use crate::connection::{self, Client, Event, Settings};
use crate::exit::{fail, is_broken_pipe, Exit};
use crate::link::{sleep_until, Link, Wait};
use crate::output::{Mode, Printer};
use crate::payload::Payload;
use crate::signals::Interrupt;
use crate::{duration, topic};

pub const EXAMPLES: &str = "\
Examples:
  mqttcli rr -t services/time -m now
  mqttcli rr -t rpc/add -m '{\"a\":1,\"b\":2}' -e rpc/add/reply/me -W 5s
  mqttcli rr -L mqtts://broker.example/rpc/status -n --json | jq -r .payload";

#[derive(Args, Debug)]
pub struct RrArgs {
    /// Topic to send the request to (or the path of -L's URL)
    #[arg(short = 't', long, value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub topic: Option<String>,

    /// Topic the responder is asked to answer on [default: mqttcli/rr/ and a random suffix]
    #[arg(short = 'e', long = "response-topic", value_name = "TOPIC", value_parser = topic::parse_topic)]
    pub response_topic: Option<String>,

    #[command(flatten)]
    pub payload: RequestArgs,

    /// Quality of service of the request and of the response subscription: 0, 1 or 2
    #[arg(short = 'q', long, value_name = "QOS", default_value = "0", value_parser = crate::cli::parse_qos)]
    pub qos: u8,

    /// Exit with code 6 if no response came after DURATION [default: wait until interrupted]
    #[arg(short = 'W', long = "timeout", value_name = "DURATION", value_parser = duration::parse)]
    pub timeout: Option<Duration>,

    /// Send -m exactly as given, with no placeholders filled in
    #[arg(long)]
    pub literal: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct RequestArgs {
    /// Request payload; placeholders as in pub -m ({time}, {unix}, {unix_ms})
    #[arg(short = 'm', long, value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Send the whole FILE as the request (binary-safe)
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Send all of stdin as the request
    #[arg(short = 's', long)]
    pub stdin_message: bool,

    /// Send an empty request
    #[arg(short = 'n', long)]
    pub null_message: bool,
}

pub async fn run(args: RrArgs, mut settings: Settings, mut interrupt: Interrupt) -> Result<Exit> {
    if settings.protocol != Protocol::V5 {
        return Err(fail(
            Exit::Usage,
            "rr needs MQTT 5: the response topic and correlation data are MQTT 5 properties: use -V 5 (rr speaks MQTT 5 unless -V or the profile's protocol says otherwise)",
        ));
    }
    let request_topic = args
        .topic
        .clone()
        .or_else(|| settings.url_topic.clone())
        .ok_or_else(|| {
            fail(
                Exit::Usage,
                "no topic to send the request to: add -t TOPIC (or a path to -L's URL)",
            )
        })?;
    let request_topic =
        crate::topic::parse_topic(&request_topic).map_err(|e| fail(Exit::Usage, e))?;
    let response_topic = args.response_topic.clone().unwrap_or_else(|| {
        format!(
            "mqttcli/rr/{}",
            Alphanumeric.sample_string(&mut rand::rng(), 16)
        )
    });
    let payload = request(&args).await?;
    let mode = Mode::from_args(&args.output)?;
    // One request, one answer: a lost connection ends the run.
    settings.reconnect.enabled = false;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let timed_out = |what: &str| {
        fail(
            Exit::Timeout,
            format!(
                "{what} within {:?} (-W): is a responder subscribed to '{request_topic}'?",
                args.timeout.unwrap_or_default()
            ),
        )
    };

    let connected = tokio::select! {
        c = connection::connect(&settings) => c?,
        _ = interrupt.wait() => return Ok(Exit::Interrupted),
        _ = sleep_until(deadline) => return Err(timed_out("not even connected")),
    };
    let mut link = Link::start(connected);

    // Subscribe first, so a quick responder's answer cannot arrive before we listen.
    link.client
        .subscribe(&[(response_topic.clone(), args.qos)])
        .await?;
    let correlation = Bytes::from(Alphanumeric.sample_string(&mut rand::rng(), 16));
    let mut requested = false;
    let response = loop {
        match link.next(deadline, &mut interrupt).await? {
            Wait::Event(Event::SubAck(codes)) if !requested => {
                if let Some(Err(reason)) = codes.into_iter().next() {
                    return Err(fail(
                        Exit::Rejected,
                        format!(
                            "the broker refused the subscription to the response topic '{response_topic}': {reason}: choose another with -e"
                        ),
                    ));
                }
                tracing::debug!("SUBACK received: subscribed to '{response_topic}'");
                publish_request(
                    &link.client,
                    &request_topic,
                    args.qos,
                    payload.clone(),
                    &response_topic,
                    correlation.clone(),
                )
                .await?;
                requested = true;
            }
            Wait::Event(Event::PublishRefused { reason, .. }) => {
                return Err(fail(
                    Exit::Rejected,
                    format!("the broker refused the request to '{request_topic}': {reason}"),
                ));
            }
            Wait::Event(Event::Message(m)) if m.topic == response_topic => {
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
            }
            Wait::Event(_) => {}
            Wait::Timeout if requested => return Err(timed_out("no response")),
            Wait::Timeout => return Err(timed_out("no SUBACK for the response topic")),
            Wait::Interrupted => {
                let _ = link.disconnect().await;
                return Ok(Exit::Interrupted);
            }
        }
    };

    let stdout = std::io::stdout().lock();
    let mut printer = Printer::new(
        std::io::BufWriter::new(stdout),
        mode,
        !args.output.no_newline,
    );
    let printed = printer.print(&response).and_then(|()| printer.flush());
    link.disconnect().await?;
    match printed {
        Ok(()) => Ok(Exit::Success),
        Err(e) => {
            let e = anyhow::Error::new(e);
            if is_broken_pipe(&e) {
                Ok(Exit::Success)
            } else {
                Err(fail(Exit::Other, format!("cannot write to stdout: {e}")))
            }
        }
    }
}

/// Publishes the request with its response topic and correlation data.
///
/// Stand-in for a `connection::Client` method (`publish_with_properties`) that the connection
/// module does not have yet: rr is the only caller, and this is the only place outside
/// `connection/` that touches rumqttc. Replace the body with the call once it exists.
async fn publish_request(
    client: &Client,
    topic: &str,
    qos: u8,
    payload: Bytes,
    response_topic: &str,
    correlation: Bytes,
) -> Result<()> {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;
    let Client::V5(c) = client else {
        return Err(fail(Exit::Usage, "rr needs MQTT 5"));
    };
    let qos = match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let properties = PublishProperties {
        response_topic: Some(response_topic.to_string()),
        correlation_data: Some(correlation),
        ..PublishProperties::default()
    };
    c.publish_bytes_with_properties(topic, qos, false, payload, properties)
        .await
        .map_err(|_| {
            fail(
                Exit::Other,
                "the connection's request queue closed unexpectedly",
            )
        })
}

async fn request(args: &RrArgs) -> Result<Bytes> {
    let p = &args.payload;
    if let Some(m) = &p.message {
        return Ok(Payload::from_message(m, args.literal).render(0));
    }
    if let Some(path) = &p.file {
        return tokio::fs::read(path).await.map(Bytes::from).map_err(|e| {
            fail(
                Exit::Usage,
                format!(
                    "cannot read {}: {e}: check the path given with -f",
                    path.display()
                ),
            )
        });
    }
    if p.stdin_message {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut buf)
            .await
            .map_err(|e| fail(Exit::Usage, format!("cannot read stdin: {e}")))?;
        return Ok(Bytes::from(buf));
    }
    Ok(Bytes::new())
}
