//! rumqttc's connection errors, in words: what happened, where, and what to try.
//! rumqttc's own `Display` texts are terse ("I/O: …", "Connection refused, return code: …").

use std::io;
use std::time::Duration;

use crate::exit::{fail, Exit};

pub fn connect_timeout(endpoint: &str, timeout: Option<Duration>) -> anyhow::Error {
    let within = timeout.map_or(String::new(), |t| format!(" within {}", humanize(t)));
    fail(
        Exit::Unreachable,
        format!(
            "no answer from {endpoint}{within}: check the host and port, or raise --connect-timeout"
        ),
    )
}

pub fn refused(endpoint: &str, reason: &str, code: u8) -> anyhow::Error {
    let hint = match code {
        1 | 0x84 => "use -V 311 or -V 5 to match the broker",
        2 | 0x85 => "choose another client id with -i",
        4 | 5 | 0x86 | 0x87 => {
            "check the username and password (-u with -P, --password-file or MQTT_PASSWORD) and the broker's access rules"
        }
        0x8A => "this client is banned by the broker",
        0x8C => "the broker wants another authentication method",
        _ => "see the broker's log for the reason",
    };
    fail(
        Exit::ConnectRefused,
        format!("the broker at {endpoint} refused the connection: {reason} (CONNACK code {code}): {hint}"),
    )
}

pub fn not_mqtt(endpoint: &str) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!("{endpoint} did not answer with an MQTT CONNACK: is it an MQTT broker, and is -p right?"),
    )
}

pub fn closed_before_connack(endpoint: &str) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!("{endpoint} closed the connection before CONNACK: is it a plain MQTT port, and is -p right?"),
    )
}

pub fn io_before_connack(endpoint: &str, e: &io::Error) -> anyhow::Error {
    let msg = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "cannot connect to {endpoint}: connection refused: is the broker running, and is -p right?"
        ),
        io::ErrorKind::TimedOut => format!(
            "cannot connect to {endpoint}: timed out: check the host and port, or raise --connect-timeout"
        ),
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => {
            return closed_before_connack(endpoint)
        }
        _ => format!("cannot connect to {endpoint}: {e}"),
    };
    fail(Exit::Unreachable, msg)
}

pub fn lost(endpoint: &str, why: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Exit::Unreachable,
        format!("lost the connection to {endpoint}: {why}"),
    )
}

pub fn too_large(
    endpoint: &str,
    size: impl std::fmt::Display,
    max: impl std::fmt::Display,
) -> anyhow::Error {
    fail(
        Exit::Rejected,
        format!("a packet of {size} bytes exceeds the limit of {max} bytes for {endpoint}: send a smaller message"),
    )
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
