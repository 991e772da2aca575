//! Helpers: the `mqttcli` command, running it with a deadline, subscribers that are known to be
//! subscribed, unique topics and assertions that show what went wrong.

pub mod broker;
pub mod brokers;
pub mod certs;
pub mod cutproxy;
pub mod fake;
pub mod live;
pub mod lost;
pub mod programs;
pub mod proxy;
pub mod rumqttd_config;
pub mod server;
pub mod socks;
pub mod transports;
pub mod wire5;

use std::process::{Command, Stdio};
use std::time::Duration;

pub use broker::{Broker, Proto, Setup};
pub use live::{Input, Live};

/// How long a run may take before it counts as hung. Only reached when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How long a subscriber may take to report its SUBACK.
const SUBACK_DEADLINE: Duration = Duration::from_secs(30);

/// Variables that change where the binary connects or whom it trusts. This machine sets
/// SSL_CERT_FILE globally; tests that need one of these set it on the command themselves.
pub const NETWORK_ENV: [&str; 10] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The binary with a clean environment, as a user's shell would not have our variables.
pub fn mqttcli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqttcli"));
    // The MQTT_* and profile variables change what the binary connects to: a developer's own
    // would leak into every test.
    for name in [
        "MQTT_HOST",
        "MQTT_PORT",
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTTCLI_PROFILE",
        "MQTTCLI_CONFIG",
    ] {
        cmd.env_remove(name);
    }
    cmd.env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("RUST_BACKTRACE", "0");
    for name in NETWORK_ENV {
        cmd.env_remove(name);
    }
    cmd
}

/// `mqttcli SUBCOMMAND -h HOST -p PORT -V VERSION`, environment cleaned: the one place that
/// spells the connection flags. `at` is this on 127.0.0.1; HOST is `localhost` for the extra
/// listeners of `Setup::listeners`, whose certificates name localhost.
pub fn connect(subcommand: &str, host: &str, port: u16, proto: Proto) -> Command {
    let mut cmd = mqttcli();
    cmd.arg(subcommand)
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-V", proto.arg()]);
    cmd
}

/// `mqttcli SUBCOMMAND -h 127.0.0.1 -p PORT -V VERSION` (see `connect`): for a broker, a relay
/// or a fake broker on that port.
pub fn at(subcommand: &str, port: u16, proto: Proto) -> Command {
    connect(subcommand, "127.0.0.1", port, proto)
}

/// The running test's name (its last path segment), from the thread libtest runs it on: for
/// the lines a test prints about itself. Call it on the test's own thread.
pub fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("");
    assert!(
        name.starts_with("cases::"),
        "test_name() called off a test's thread ('{name}')"
    );
    name.rsplit("::").next().unwrap_or(name).to_string()
}

/// `test/<random>/`: a topic prefix no other test (or earlier run on a shared broker) uses.
pub fn unique_topic() -> String {
    format!("test/{}/", random_hex())
}

/// A client id of at most 23 characters, unique to this call.
pub fn unique_id() -> String {
    format!("t-{}", random_hex())
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process and differs per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// What a finished process left behind.
pub struct Out {
    pub what: String,
    /// None if a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Exit code 0, and stdout is exactly `expected`.
    #[track_caller]
    pub fn assert_ok(&self, expected: &[u8]) -> &Self {
        self.assert_code(0);
        self.assert_stdout(expected)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code of {}\n{}",
            self.what,
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout(&self, expected: &[u8]) -> &Self {
        if self.stdout != expected {
            let at = self
                .stdout
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(self.stdout.len().min(expected.len()));
            panic!(
                "stdout of {} differs at byte {at} (got {} bytes, expected {}):\n\
                 expected (from byte {at}): {:?}\n{}",
                self.what,
                self.stdout.len(),
                expected.len(),
                String::from_utf8_lossy(&expected[at..expected.len().min(at + 300)]),
                self.dump()
            );
        }
        self
    }

    /// Failed with `code`, nothing on stdout, and stderr is one line `mqttcli: error: …` that
    /// contains each keyword (case-insensitive; `a|b` means either).
    #[track_caller]
    pub fn assert_error(&self, code: i32, keywords: &[&str]) -> &Self {
        self.assert_code(code);
        self.assert_stdout(b"");
        self.assert_error_line(keywords)
    }

    /// Failed with `code`, nothing on stdout, and stderr is exactly `line` and a newline.
    #[track_caller]
    pub fn assert_exact_error(&self, code: i32, line: &str) -> &Self {
        self.assert_code(code);
        self.assert_stdout(b"");
        assert_eq!(
            self.stderr,
            format!("{line}\n"),
            "stderr of {} is not exactly the expected line\n{}",
            self.what,
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn assert_error_line(&self, keywords: &[&str]) -> &Self {
        let one_line = self.stderr.ends_with('\n') && self.stderr.lines().count() == 1;
        assert!(
            one_line && self.stderr.starts_with("mqttcli: error: "),
            "stderr of {} should be one line starting 'mqttcli: error: '\n{}",
            self.what,
            self.dump()
        );
        let lower = self.stderr.to_lowercase();
        for keyword in keywords {
            assert!(
                keyword
                    .split('|')
                    .any(|k| lower.contains(&k.to_lowercase())),
                "stderr of {} lacks '{keyword}'\n{}",
                self.what,
                self.dump()
            );
        }
        self
    }

    pub fn dump(&self) -> String {
        let mut stdout = self.stdout_str();
        if stdout.len() > 2000 {
            let mut cut = 2000;
            while !stdout.is_char_boundary(cut) {
                cut -= 1;
            }
            stdout.truncate(cut);
            stdout += "…(cut)";
        }
        let mut stderr = self.stderr.clone();
        if stderr.len() > 8000 {
            let mut cut = stderr.len() - 8000;
            while !stderr.is_char_boundary(cut) {
                cut += 1;
            }
            stderr = format!("(cut)…{}", &stderr[cut..]);
        }
        format!(
            "code: {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            self.code
        )
    }
}

/// Run to completion with nothing on stdin; kill it and fail after `DEADLINE`.
#[track_caller]
pub fn run(cmd: &mut Command) -> Out {
    run_with_timeout(cmd, None, DEADLINE)
}

/// Run with `stdin` (or nothing) as input; kill it and fail after `deadline`.
#[track_caller]
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<Vec<u8>>, deadline: Duration) -> Out {
    let input = stdin.map_or(Input::Null, Input::Bytes);
    Live::spawn_with(cmd, input, Stdio::piped())
        .wait(deadline)
        .0
}

/// Spawn a `sub` command (bounded by `-W`; `-d` is added) and wait until the broker has
/// acknowledged it (SUBACK seen on its stderr), so whatever is published from now on reaches it.
#[track_caller]
pub fn subscriber(cmd: &mut Command) -> Live {
    subscriber_with_stdout(cmd, Stdio::piped())
}

/// As `subscriber`, with stdout going to `stdout` (e.g. another process's stdin).
#[track_caller]
pub fn subscriber_with_stdout(cmd: &mut Command, stdout: Stdio) -> Live {
    assert!(
        cmd.get_args().any(|a| a == "-W"),
        "bound every subscriber with -W so that a hang becomes a failure"
    );
    let mut sub = Live::spawn_with(cmd.arg("-d"), Input::Null, stdout);
    // The caller's `cmd` still holds a pipe end given as `stdout` until it is dropped.
    sub.wait_stderr("SUBACK", 1, SUBACK_DEADLINE);
    sub
}

/// Send a signal such as "INT" or "TERM" with the shell's built-in `kill` (slim images may lack
/// /bin/kill, and this needs no libc dependency).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .expect("run sh -c kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Publish one message and check that the publisher succeeded.
#[track_caller]
pub fn publish(broker: &Broker, proto: Proto, topic: &str, args: &[&str]) {
    run(broker.cmd("pub", proto).args(["-t", topic]).args(args)).assert_ok(b"");
}
