//! Helpers for the tests of lost connections (tests/cases/reliability.rs and delivery.rs):
//! reconnect flags, deadlines, reading `pub`'s progress and warnings, checking a stream of
//! numbered lines.

use std::time::Duration;

use super::live::Live;
use super::{at, run, signal, Out, Proto};

/// Small delays, so that a reconnect comes within about a second whatever the attempt.
pub const RECONNECT: [&str; 4] = ["--reconnect-delay", "100ms", "--reconnect-max-delay", "1s"];

/// For one event to happen (a message, a reconnect). Generous: a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub const WARNING: &str = "mqttcli: warning: ";

pub const ERROR: &str = "mqttcli: error: ";

/// Publish one QoS 1 message straight to the broker on `port`.
#[track_caller]
pub fn publish_one(port: u16, topic: &str, message: &str) {
    run(at("pub", port, Proto::V311).args(["-t", topic, "-q", "1", "-m", message])).assert_ok(b"");
}

/// The stderr lines of `out` that start with `prefix` ("mqttcli: warning: ", …). Debug output
/// (`-d`) may span several lines; these never do.
pub fn lines_starting<'a>(out: &'a Out, prefix: &str) -> Vec<&'a str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

pub fn count(out: &Out, needle: &str) -> usize {
    out.stderr.lines().filter(|l| l.contains(needle)).count()
}

/// What `out` is (its command) and what it printed, for a failure message.
pub fn show(out: &Out) -> String {
    format!("{}\n{}", out.what, out.dump())
}

/// From `RUST_LOG=mqttcli=debug` output of `pub`: (acknowledged, produced, sent again) of its
/// last line `N of M messages acknowledged[, K sent again after reconnecting]`.
#[track_caller]
pub fn pub_progress(out: &Out) -> (u64, u64, u64) {
    let line = out
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("mqttcli: debug: ") && l.contains(" messages acknowledged"))
        .unwrap_or_else(|| panic!("no progress line on stderr\n{}", show(out)));
    let text = line.trim_start_matches("mqttcli: debug: ");
    let words: Vec<&str> = text.split(' ').collect();
    let number = |s: &str| -> u64 {
        s.trim_end_matches(',')
            .parse()
            .unwrap_or_else(|_| panic!("unexpected progress line '{line}'"))
    };
    assert!(
        words.len() >= 5 && words[1] == "of" && words[3] == "messages",
        "unexpected progress line '{line}'"
    );
    let again = text
        .split_once(", ")
        .map_or(0, |(_, rest)| number(rest.split(' ').next().unwrap_or("")));
    (number(words[0]), number(words[2]), again)
}

/// End a `sub` with SIGINT: exit code 130 after a clean disconnect.
#[track_caller]
pub fn interrupt_sub(sub: Live) -> Out {
    signal(sub.pid(), "INT");
    let (out, _) = sub.wait(WAIT);
    out.assert_code(130);
    out
}

/// `values` (the subscriber's lines, as numbers) hold every number of `first..first + n` in
/// order apart from duplicates: with each value's later copies removed, the sequence is
/// exactly `first..first + n`. Returns how many duplicates there were.
pub fn in_order_apart_from_duplicates(values: &[&str], first: u64, n: u64) -> Result<u64, String> {
    let mut next = first; // the lowest value not seen yet
    let mut duplicates = 0;
    for (i, line) in values.iter().enumerate() {
        let v: u64 = line
            .parse()
            .map_err(|_| format!("line {i} is '{line}', not a number"))?;
        if v == next {
            next += 1;
        } else if v < next {
            duplicates += 1;
        } else {
            let from = i.saturating_sub(5);
            let seen: std::collections::HashSet<&str> = values.iter().copied().collect();
            let lost: Vec<u64> = (first..first + n)
                .filter(|v| !seen.contains(v.to_string().as_str()))
                .collect();
            return Err(format!(
                "out of order or lost: line {i} is {v} while {next} was never seen \
                 (lines {from}..: {:?}); {duplicates} duplicates before it; in all {} of the \
                 {n} values never arrived (the first: {:?})",
                &values[from..values.len().min(i + 5)],
                lost.len(),
                &lost[..lost.len().min(10)]
            ));
        }
    }
    if next != first + n {
        return Err(format!(
            "lost the end: {} lines, the last value seen in order is {}",
            values.len(),
            next as i64 - 1
        ));
    }
    Ok(duplicates)
}
