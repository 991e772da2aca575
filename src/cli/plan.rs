//! Arguments → what a command runs with: its options and its connection settings, each
//! settled once, here. Commands take them as they are.

use std::path::PathBuf;

use anyhow::Result;

use super::settings::{resolve, Purpose, Resolved};
use super::Environment;
use super::{CheckArgs, Command, ConnArgs, OutputArgs, PubArgs, RrArgs, SubArgs, UnsubArgs};
use crate::commands::{check, publish, rr, subscribe, unsubscribe};
use crate::connection::{Protocol, Qos, Settings};
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
}

impl Plan {
    /// `-d` and `--quiet`, which set up logging before anything else.
    pub fn logging(command: &Command) -> (bool, bool) {
        let conn: Option<&ConnArgs> = match command {
            Command::Pub(a) => Some(&a.conn),
            Command::Sub(a) => Some(&a.conn),
            Command::Unsub(a) => Some(&a.conn),
            Command::Check(a) => Some(&a.conn),
            Command::Rr(a) => Some(&a.conn),
            Command::Completions(_) | Command::Man(_) => None,
        };
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
        Command::Completions(_) | Command::Man(_) => return Ok(None),
    }))
}

fn publish_plan(a: PubArgs, env: &Environment) -> Result<Plan> {
    // A single publish fails fast; only streams (-l, --interval) ride out a lost connection.
    let streaming = a.payload.stdin_lines || a.interval.is_some();
    let purpose = Purpose::Publish {
        qos: a.qos,
        streaming,
    };
    let Resolved {
        settings,
        url_topic,
    } = resolve(&a.conn, env, purpose)?;
    let topic = topic_or_url(
        a.topic,
        url_topic,
        "no topic to publish to: add -t TOPIC (or a path to -L's URL)",
    )?;
    let input = if a.payload.stdin_lines {
        if a.repeat.is_some() || a.interval.is_some() {
            return Err(usage(
                "-l sends each stdin line once: drop --repeat/--interval",
            ));
        }
        publish::Input::Lines
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
    } = resolve(&a.conn, env, Purpose::Subscribe)?;
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
    let options = subscribe::Options {
        filters: topics.into_iter().zip(qos).collect(),
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
    let Resolved { settings, .. } = resolve(&a.conn, env, Purpose::Unsubscribe)?;
    let options = unsubscribe::Options { filters: a.topic };
    Ok(Plan::Unsubscribe(options, settings))
}

fn check_plan(a: CheckArgs, env: &Environment) -> Result<Plan> {
    let Resolved { settings, .. } = resolve(&a.conn, env, Purpose::Check { qos: a.qos })?;
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
        timeout: a.timeout,
        format: format(&a.output)?,
    };
    Ok(Plan::Request(options, settings))
}
