//! The exit-code table, and the error type that carries a code up to `main`.
//!
//! Keep `TABLE` in step with the README: it is printed by `--help`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Anything not covered below: writing the output failed, an internal error.
    Other,
    /// clap's own code for usage errors; ours follow it for bad values and unreadable inputs.
    Usage,
    /// DNS, connection refused, connect timeout, or the connection was lost.
    Unreachable,
    /// The broker answered CONNACK with a refusal (bad credentials, not authorised, …).
    ConnectRefused,
    /// A publish, subscribe or unsubscribe was refused, or not every message was acknowledged.
    Rejected,
    /// `-W` ran out before the run was complete (`sub`, `unsub`, `rr`, `check`).
    Timeout,
    /// The TLS handshake failed: certificate not trusted, expired or for another name, or the
    /// broker wants a client certificate.
    Tls,
    /// SIGINT or SIGTERM ended the run (after a clean disconnect).
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Other => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::ConnectRefused => 4,
            Exit::Rejected => 5,
            Exit::Timeout => 6,
            Exit::Tls => 7,
            Exit::Interrupted => 130,
        }
    }
}

pub const TABLE: &str = "\
Exit codes:
  0    success
  1    other error (e.g. writing the output failed)
  2    usage error: bad flag, value or input file
  3    cannot reach the broker, or the connection was lost (DNS, refused, timeout)
  4    the broker refused the connection (bad credentials, not authorised, ...)
  5    a publish, subscribe or unsubscribe was refused, or not every message was acknowledged
  6    the -W timeout expired (sub, unsub, rr, check)
  7    the TLS handshake failed (certificate not trusted, expired, for another name, ...)
  130  interrupted by Ctrl-C or SIGTERM (after a clean disconnect)";

/// An error that knows its exit code. The message is one line naming the problem and the fix.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A bad flag, value or input: exit code 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    fail(Exit::Usage, message)
}

pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        exit,
        message: message.into(),
    })
}

/// A closed stdout (`mqttcli sub | head -1`) is a normal way to finish: Rust ignores SIGPIPE,
/// so it arrives here as a `BrokenPipe` write error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn exit_for(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>().map(|f| f.exit))
        .unwrap_or(Exit::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        for exit in [
            Exit::Success,
            Exit::Other,
            Exit::Usage,
            Exit::Unreachable,
            Exit::ConnectRefused,
            Exit::Rejected,
            Exit::Timeout,
            Exit::Tls,
            Exit::Interrupted,
        ] {
            let line = format!("\n  {:<4} ", exit.code());
            assert!(TABLE.contains(&line), "{exit:?} missing from TABLE");
        }
    }

    #[test]
    fn exit_is_found_through_context() {
        let err = fail(Exit::Timeout, "timed out").context("while waiting");
        assert_eq!(exit_for(&err), Exit::Timeout);
        assert_eq!(exit_for(&anyhow::anyhow!("plain")), Exit::Other);
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        assert!(is_broken_pipe(&anyhow::Error::new(io).context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
