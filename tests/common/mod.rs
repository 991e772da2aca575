//! Helpers: the `mqttcli` command, running it with a deadline, subscribers that are known to be
//! subscribed, unique topics and assertions that show what went wrong.

pub mod broker;
pub mod certs;
pub mod cutproxy;
pub mod live;
pub mod programs;
pub mod proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use broker::{Broker, Proto, Setup};

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

/// `mqttcli SUBCOMMAND -h localhost -p PORT -V VERSION`, environment cleaned: for the extra
/// listeners of `Setup::listeners`, whose certificates name localhost.
pub fn at_localhost(subcommand: &str, port: u16, proto: Proto) -> Command {
    let mut cmd = mqttcli();
    cmd.arg(subcommand)
        .args(["-h", "localhost", "-p", &port.to_string()])
        .args(["-V", proto.arg()]);
    cmd
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
    Proc::spawn(cmd, stdin, Stdio::piped()).wait(deadline)
}

/// A running child whose stdout is collected by a thread and whose stderr lines arrive on a
/// channel, so neither pipe can fill up and block it. Killed on drop if still running.
pub struct Proc {
    what: String,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr_rx: Receiver<String>,
    stderr: String,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, stdin: Option<Vec<u8>>, stdout: Stdio) -> Proc {
        let mut what: String = format!("{cmd:?}").chars().take(300).collect();
        if what.chars().count() == 300 {
            what += "…";
        }
        let mut child = cmd
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Errors are ignored: the child may legitimately exit without reading it all.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        Proc::adopt(what, child)
    }

    /// Take over a child spawned with piped stderr (and stdout, if it is to be collected).
    pub fn adopt(what: String, mut child: Child) -> Proc {
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            })
        });
        let (tx, stderr_rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
                line.clear();
            }
        });
        Proc {
            what,
            child,
            stdout,
            stderr_rx,
            stderr: String::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a stderr line containing `needle`; false if the process ended first.
    fn wait_for_stderr(&mut self, needle: &str, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            match self
                .stderr_rx
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr += &line;
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no '{needle}' on stderr of {} within {deadline:?}; stderr so far:\n{}",
                        self.what, self.stderr
                    );
                }
            }
        }
    }

    /// Wait for the exit, killing the process and failing after `deadline`.
    #[track_caller]
    pub fn wait(mut self, deadline: Duration) -> Out {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.drain_stderr(Duration::from_secs(5));
                panic!(
                    "{} still running after {deadline:?}, killed; stderr:\n{stderr}",
                    self.what
                );
            }
            // Polls the exit status every 20 ms while collecting stderr.
            if let Ok(line) = self.stderr_rx.recv_timeout(Duration::from_millis(20)) {
                self.stderr += &line;
            }
        };
        // The pipes close when the process (and anything it passed them to) is gone.
        let stderr = self.drain_stderr(DEADLINE);
        let stdout = self
            .stdout
            .take()
            .map(|t| t.join().expect("stdout reader"))
            .unwrap_or_default();
        Out {
            what: std::mem::take(&mut self.what),
            code: status.code(),
            stdout,
            stderr,
        }
    }

    fn drain_stderr(&mut self, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        while let Ok(line) = self
            .stderr_rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.stderr += &line;
        }
        std::mem::take(&mut self.stderr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `mqttcli sub` that the broker has acknowledged (SUBACK seen on its `-d` stderr),
/// so whatever is published from now on reaches it.
pub struct Sub(Proc);

impl Sub {
    /// Spawn `cmd` (a `sub` command bounded by `-W`; `-d` is added) and wait for its SUBACK.
    #[track_caller]
    pub fn start(cmd: &mut Command) -> Sub {
        Sub::start_with_stdout(cmd, Stdio::piped())
    }

    /// As `start`, with stdout going to `stdout` (e.g. another process's stdin).
    #[track_caller]
    pub fn start_with_stdout(cmd: &mut Command, stdout: Stdio) -> Sub {
        assert!(
            cmd.get_args().any(|a| a == "-W"),
            "bound every subscriber with -W so that a hang becomes a failure"
        );
        let mut proc = Proc::spawn(cmd.arg("-d"), None, stdout);
        // The caller's `cmd` still holds a pipe end given as `stdout` until it is dropped.
        if !proc.wait_for_stderr("SUBACK", SUBACK_DEADLINE) {
            let out = proc.wait(DEADLINE);
            panic!(
                "subscriber ended before its SUBACK: {}\n{}",
                out.what,
                out.dump()
            );
        }
        Sub(proc)
    }

    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Wait for it to end (it must be bounded by -C, -W or a signal).
    #[track_caller]
    pub fn finish(self) -> Out {
        self.0.wait(DEADLINE)
    }
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

/// One MQTT packet read from `conn`, fixed header included: for the scripted brokers of
/// tests that need a broker to misbehave in a way no real one will.
pub fn read_packet(conn: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte)?;
    let mut packet = vec![byte[0]];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        conn.read_exact(&mut byte)?;
        packet.push(byte[0]);
        len |= ((byte[0] & 0x7f) as usize) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    packet.extend(body);
    Ok(packet)
}
