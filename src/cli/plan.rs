//! Arguments → what a command runs with: its options and its connection settings, each
//! settled once, here. Commands take them as they are.

use std::path::PathBuf;

use anyhow::Result;

use super::properties::{Packet, PacketProperties};
use super::settings::{resolve, Purpose, Resolved};
use super::Environment;
use super::{
    CheckArgs, Command, MessagePropertyArgs, OutputArgs, PubArgs, RrArgs, SubArgs, UnsubArgs,
};
use crate::commands::{bench, check, publish, rr, subscribe, unsubscribe};
use crate::connection::{Properties, Protocol, Qos, RetainHandling, Settings, Subscription};
use crate::exit::usage;
use crate::output::{template, Format, Mode};
use crate::payload::Source;
use crate::topic;

/// A subcommand that connects, with everything it needs.
pub enum Plan {
    Publish(publish::Options, Settings),
    Subscribe(subscribe::Options, Settings),
    Unsubscribe(unsubscribe::Options, Settings),
    Check(check::Options, Settings),
    Request(rr::Options, Settings),
    Bench(bench::Options, Settings),
}

impl Plan {
    /// `-d` and `--quiet`, which set up logging before anything else.
    pub fn logging(command: &Command) -> (bool, bool) {
        let conn = command.conn();
        (conn.is_some_and(|c| c.debug), conn.is_some_and(|c| c.quiet))
    }
}

/// The plan for a connecting subcommand; `None` for the ones that only print generated text.
pub fn plan(command: Command, env: &Environment) -> Result<Option<Plan>> {
    Ok(Some(match command {
        Command::Pub(a) => publish_plan(a, env)?,
        Command::Sub(a) => subscribe_plan(a, env)?,
        Command::Unsub(a) => unsubscribe_plan(a, env)?,
        Command::Check(a) => check_plan(a, env)?,
        Command::Rr(a) => request_plan(a, env)?,
        Command::Bench(a) => return super::bench::plan(a.command, env),
        Command::Completions(_) | Command::Man(_) => return Ok(None),
    }))
}

fn publish_plan(a: PubArgs, env: &Environment) -> Result<Plan> {
    // A single publish fails fast; only streams (-l, --jsonl, --interval) ride out a lost
    // connection.
    let streaming = a.stdin_lines || a.jsonl || a.interval.is_some();
    if a.topic_sep.is_some() && !a.stdin_lines {
        return Err(usage(
            "--topic-sep splits each line of -l into topic and payload: add -l",
        ));
    }
    if a.speed.is_some() && !a.jsonl {
        return Err(usage(
            "--speed paces a replay by its recorded times: add --jsonl (--interval paces -m)",
        ));
    }
    // One message gains nothing from an alias: it would only add the alias to the packet.
    let several = streaming || a.repeat.is_some_and(|n| n > 1);
    let purpose = Purpose::Publish {
        qos: a.qos,
        streaming,
        max_inflight: a.max_inflight,
        topic_aliases: several && !a.no_topic_alias,
    };
    let Resolved {
        settings,
        url_topic,
        packets,
    } = resolve(&a.conn, env, purpose)?;
    let topic = if a.jsonl {
        // A record names its topic; -t (or -L's path) is for one that does not.
        match (a.topic, url_topic) {
            (Some(t), _) => Some(t),
            (None, Some(t)) => Some(topic::parse_topic(&t).map_err(usage)?),
            (None, None) => None,
        }
    } else if a.topic_sep.is_some() {
        if url_topic.is_some() {
            return Err(usage(
                "--topic-sep takes each message's topic from its line: drop the topic from -L's URL",
            ));
        }
        None
    } else {
        Some(topic_or_url(
            a.topic,
            url_topic,
            "no topic to publish to: add -t TOPIC (or a path to -L's URL)",
        )?)
    };
    sends_only(&packets, "pub", &[Packet::Publish])?;
    mqtt5_only(
        &settings,
        &[
            ("--response-topic", a.response_topic.is_some()),
            ("--correlation-data", a.correlation_data.is_some()),
            (
                "--correlation-data-base64",
                a.correlation_data_base64.is_some(),
            ),
            ("--no-topic-alias", a.no_topic_alias),
        ],
    )?;
    let mut properties = message_properties(&settings, packets.publish, &a.message_properties)?;
    if a.no_topic_alias && properties.topic_alias.is_some() {
        return Err(usage(
            "--no-topic-alias and -D PUBLISH topic-alias contradict each other: drop one",
        ));
    }
    merge(
        &mut properties.response_topic,
        a.response_topic,
        "--response-topic",
    )?;
    let correlation = a
        .correlation_data
        .map(|t| bytes::Bytes::from(t.into_bytes()))
        .or(a.correlation_data_base64);
    merge(
        &mut properties.correlation_data,
        correlation,
        "--correlation-data",
    )?;
    if a.jsonl && properties != Properties::default() {
        return Err(usage(
            "--jsonl sends the properties recorded on each line: drop -D PUBLISH and the property flags (--user-property, --content-type, ...)",
        ));
    }
    let input = if a.jsonl {
        if a.repeat.is_some() || a.interval.is_some() {
            return Err(usage(
                "--jsonl sends each line once: drop --repeat/--interval (--speed paces a replay by its recorded times)",
            ));
        }
        publish::Input::Records { speed: a.speed }
    } else if a.stdin_lines {
        if a.repeat.is_some() || a.interval.is_some() {
            return Err(usage(
                "-l sends each stdin line once: drop --repeat/--interval",
            ));
        }
        publish::Input::Lines {
            topic_sep: a.topic_sep.map(String::into_bytes),
        }
    } else {
        let repeat = match (a.repeat, a.interval) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        publish::Input::Repeat {
            payload: source(
                &a.payload.message,
                &a.payload.file,
                a.payload.stdin_message,
                a.literal,
            ),
            repeat,
            interval: a.interval.filter(|d| !d.is_zero()),
        }
    };
    let options = publish::Options {
        topic,
        input,
        qos: a.qos,
        retain: a.retain,
        properties,
        ack_timeout: a.ack_timeout,
        progress: streaming && !a.conn.quiet,
    };
    Ok(Plan::Publish(options, settings))
}

/// `-m`, `-f`, `-s` or (none of them: `-n`), as `pub` and `rr` both spell them.
fn source(message: &Option<String>, file: &Option<PathBuf>, stdin: bool, literal: bool) -> Source {
    if let Some(text) = message {
        Source::Message {
            text: text.clone(),
            literal,
        }
    } else if let Some(path) = file {
        Source::File(path.clone())
    } else if stdin {
        Source::Stdin
    } else {
        Source::Empty
    }
}

/// `-t`, else the path of `-L`'s URL (checked here: a URL's path may hold anything).
fn topic_or_url(flag: Option<String>, url: Option<String>, missing: &str) -> Result<String> {
    match (flag, url) {
        (Some(t), _) => Ok(t),
        (None, Some(t)) => topic::parse_topic(&t).map_err(usage),
        (None, None) => Err(usage(missing)),
    }
}

fn format(o: &OutputArgs) -> Result<Format> {
    let mode = if o.json {
        Mode::Json
    } else if let Some(f) = &o.format {
        Mode::Template(template::parse(f).map_err(usage)?)
    } else if o.verbose {
        Mode::Verbose
    } else {
        Mode::Payload
    };
    Ok(Format {
        mode,
        newline: !o.no_newline,
    })
}

fn subscribe_plan(a: SubArgs, env: &Environment) -> Result<Plan> {
    let Resolved {
        settings,
        url_topic,
        packets,
    } = resolve(&a.conn, env, Purpose::Subscribe { count: a.count })?;
    sends_only(&packets, "sub", &[Packet::Subscribe])?;
    mqtt5_only(
        &settings,
        &[
            ("--no-local", a.no_local),
            ("--retain-as-published", a.retain_as_published),
            ("--retain-handling", a.retain_handling.is_some()),
            ("--user-property", !a.user_property.is_empty()),
        ],
    )?;
    let mut topics = a.topic;
    if topics.is_empty() {
        if let Some(t) = url_topic {
            topics.push(topic::parse_filter(&t).map_err(usage)?);
        }
    }
    if topics.is_empty() {
        return Err(usage(
            "no topic to subscribe to: add -t FILTER, e.g. -t 'sensors/#'",
        ));
    }
    let qos: Vec<Qos> = match a.qos.len() {
        0 => vec![Qos::AtMostOnce; topics.len()],
        1 => vec![a.qos[0]; topics.len()],
        n if n == topics.len() => a.qos,
        n => {
            return Err(usage(format!(
                "{n} -q values for {} -t filters: give one -q for all, or one per -t",
                topics.len()
            )))
        }
    };
    let mut properties = packets.subscribe;
    properties.user_properties.extend(a.user_property);
    let options = subscribe::Options {
        filters: topics
            .into_iter()
            .zip(qos)
            .map(|(filter, qos)| Subscription {
                filter,
                qos,
                no_local: a.no_local,
                retain_as_published: a.retain_as_published,
                retain_handling: a.retain_handling.unwrap_or(RetainHandling::Always),
            })
            .collect(),
        properties,
        count: a.count,
        timeout: a.timeout,
        exit_after_sub: a.exit_after_sub,
        select: subscribe::Selection {
            no_retained: a.no_retained,
            retained_only: a.retained_only,
            filter_out: a.filter_out,
        },
        format: format(&a.output)?,
    };
    Ok(Plan::Subscribe(options, settings))
}

fn unsubscribe_plan(a: UnsubArgs, env: &Environment) -> Result<Plan> {
    let Resolved {
        settings, packets, ..
    } = resolve(&a.conn, env, Purpose::Unsubscribe)?;
    sends_only(&packets, "unsub", &[Packet::Unsubscribe])?;
    mqtt5_only(
        &settings,
        &[("--user-property", !a.user_property.is_empty())],
    )?;
    let mut user_properties = packets.unsubscribe;
    user_properties.extend(a.user_property);
    let options = unsubscribe::Options {
        filters: a.topic,
        user_properties,
        timeout: a.timeout,
    };
    Ok(Plan::Unsubscribe(options, settings))
}

fn check_plan(a: CheckArgs, env: &Environment) -> Result<Plan> {
    let Resolved {
        settings, packets, ..
    } = resolve(&a.conn, env, Purpose::Check { qos: a.qos })?;
    sends_only(&packets, "check", &[])?;
    let options = check::Options {
        count: a.count,
        qos: a.qos,
        timeout: a.timeout,
        topic_prefix: a.topic,
        json: a.json,
        probe: a.probe,
    };
    Ok(Plan::Check(options, settings))
}

fn request_plan(a: RrArgs, env: &Environment) -> Result<Plan> {
    let Resolved {
        settings,
        url_topic,
        packets,
    } = resolve(&a.conn, env, Purpose::Request)?;
    if settings.protocol != Protocol::V5 {
        return Err(usage(
            "rr needs MQTT 5: the response topic and correlation data are MQTT 5 properties: use -V 5 (rr speaks MQTT 5 unless -V or the profile's protocol says otherwise)",
        ));
    }
    let request_topic = topic_or_url(
        a.topic,
        url_topic,
        "no topic to send the request to: add -t TOPIC (or a path to -L's URL)",
    )?;
    sends_only(&packets, "rr", &[Packet::Publish])?;
    if packets.publish.response_topic.is_some() || packets.publish.correlation_data.is_some() {
        return Err(usage(
            "rr sets the request's response topic (-e) and correlation data itself: drop -D PUBLISH response-topic/correlation-data",
        ));
    }
    let properties = message_properties(&settings, packets.publish, &a.message_properties)?;
    let options = rr::Options {
        request_topic,
        response_topic: a.response_topic,
        payload: source(
            &a.payload.message,
            &a.payload.file,
            a.payload.stdin_message,
            a.literal,
        ),
        qos: a.qos,
        properties,
        timeout: a.timeout,
        format: format(&a.output)?,
    };
    Ok(Plan::Request(options, settings))
}

/// `-D` names only CONNECT, WILL and the packets this subcommand sends.
pub(super) fn sends_only(packets: &PacketProperties, command: &str, own: &[Packet]) -> Result<()> {
    let stray = packets
        .named
        .iter()
        .find(|p| !matches!(p, Packet::Connect | Packet::Will) && !own.contains(p));
    match stray {
        Some(p) => {
            let who = match p {
                Packet::Publish => "pub or rr",
                Packet::Subscribe => "sub",
                _ => "unsub",
            };
            Err(usage(format!(
                "-D {0}: {command} sends no {0}: give it to {who}",
                p.name()
            )))
        }
        None => Ok(()),
    }
}

/// The first of these flags that was given, refused under MQTT 3.1.1.
fn mqtt5_only(settings: &Settings, flags: &[(&str, bool)]) -> Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) if settings.protocol == Protocol::V311 => {
            Err(usage(format!("{flag} is an MQTT 5 feature: add -V 5")))
        }
        _ => Ok(()),
    }
}

/// A PUBLISH's properties: `-D PUBLISH ...` and the flags that say the same in words.
fn message_properties(
    settings: &Settings,
    mut p: Properties,
    flags: &MessagePropertyArgs,
) -> Result<Properties> {
    mqtt5_only(
        settings,
        &[
            ("--user-property", !flags.user_property.is_empty()),
            ("--content-type", flags.content_type.is_some()),
            ("--message-expiry", flags.message_expiry.is_some()),
        ],
    )?;
    p.user_properties
        .extend(flags.user_property.iter().cloned());
    merge(
        &mut p.content_type,
        flags.content_type.clone(),
        "--content-type",
    )?;
    merge(
        &mut p.message_expiry_interval,
        flags.message_expiry,
        "--message-expiry",
    )?;
    Ok(p)
}

/// A flag's value where `-D` left the property unset; both given is a mistake.
fn merge<T>(slot: &mut Option<T>, flag: Option<T>, name: &str) -> Result<()> {
    match (slot.is_some(), flag) {
        (true, Some(_)) => Err(usage(format!(
            "{name} and -D PUBLISH say the same thing: give one"
        ))),
        (_, Some(v)) => {
            *slot = Some(v);
            Ok(())
        }
        (_, None) => Ok(()),
    }
}
