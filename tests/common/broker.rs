//! The broker the tests talk to: a Mosquitto process per test, or a shared in-process rumqttd.
//!
//! - Mosquitto, if build.rs found it (tests/common/programs.rs), runs with a config written to
//!   a tempdir, listens on a free port of 127.0.0.1 and is killed by PID in `Drop`. Its log is
//!   printed when a test fails.
//! - Without Mosquitto, one rumqttd 0.20 per test binary runs on a thread (it cannot be shut
//!   down) for `Broker::start`. Tests that need what it lacks (password files, ACLs, CONNACK
//!   refusals: it just drops the connection; a process to stop) call `Broker::mosquitto` and
//!   carry `#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]`, so
//!   that the runner reports them as ignored.
//!
//! Environment:
//! - `MQTTCLI_TEST_NO_MOSQUITTO=1` when building the tests hides Mosquitto (see build.rs): the
//!   fallback and the ignored count can be checked on a machine that has it.
//! - `MQTTCLI_REQUIRE_MOSQUITTO=1` (set by CI) turns a missing Mosquitto into a test failure
//!   instead of a fallback or an ignored test.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const READY_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V311,
    V5,
}

impl Proto {
    pub fn arg(self) -> &'static str {
        match self {
            Proto::V311 => "311",
            Proto::V5 => "5",
        }
    }
}

/// What a test needs beyond an anonymous broker. Only Mosquitto can provide it.
#[derive(Default)]
pub struct Setup<'a> {
    /// Users for a `password_file` (made with `mosquitto_passwd -b -c`).
    pub users: &'a [(&'a str, &'a str)],
    pub anonymous: bool,
    /// Lines of an `acl_file`, e.g. `topic readwrite allowed/#`.
    pub acl: &'a [&'a str],
    /// More listeners, each on a free port of its own (`Broker::listener_port(i)`), given as the
    /// lines that follow its `listener PORT 127.0.0.1` line: `certfile …`/`keyfile …` for TLS,
    /// `protocol websockets`, … Mosquitto 2.0.11 binds a websockets listener to every interface
    /// whatever the address (libwebsockets ignores it); the tests still only connect to
    /// 127.0.0.1.
    pub listeners: &'a [String],
    /// Environment of the Mosquitto process, e.g. `OPENSSL_CONF` to cap its TLS version.
    pub env: &'a [(&'a str, String)],
    /// Keep sessions and queued messages in a file in the broker's tempdir: Mosquitto writes it
    /// when it stops on SIGTERM and reads it when started again (`Broker::restart`).
    pub persistence: bool,
    /// More lines for mosquitto.conf, e.g. `log_type all`. They go into the main section,
    /// after the generated lines (so they can override them) and before the extra listeners.
    pub extra: &'a [&'a str],
}

pub struct Broker {
    port_v311: u16,
    port_v5: u16,
    mosquitto: Option<Mosquitto>,
}

impl Broker {
    /// An anonymous broker: Mosquitto if there is one, else the shared rumqttd.
    pub fn start() -> Broker {
        match mosquitto_binary() {
            Some(bin) => Broker::with_mosquitto(
                &bin,
                &Setup {
                    anonymous: true,
                    ..Setup::default()
                },
            ),
            None => {
                let (port_v311, port_v5) = *RUMQTTD.get_or_init(start_rumqttd);
                Broker {
                    port_v311,
                    port_v5,
                    mosquitto: None,
                }
            }
        }
    }

    /// A Mosquitto broker set up as asked. A test that calls this carries
    /// `#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]`.
    #[track_caller]
    pub fn mosquitto(setup: &Setup) -> Broker {
        let bin = mosquitto_binary().unwrap_or_else(|| super::programs::program("mosquitto"));
        Broker::with_mosquitto(&bin, setup)
    }

    /// An anonymous Mosquitto broker (see `mosquitto`).
    #[track_caller]
    pub fn anonymous_mosquitto() -> Broker {
        Broker::mosquitto(&Setup {
            anonymous: true,
            ..Setup::default()
        })
    }

    /// An anonymous Mosquitto with these more listeners (`Setup::listeners`), e.g. TLS ones.
    #[track_caller]
    pub fn anonymous_with_listeners(listeners: &[String]) -> Broker {
        Broker::mosquitto(&Setup {
            anonymous: true,
            listeners,
            ..Setup::default()
        })
    }

    pub fn port(&self, proto: Proto) -> u16 {
        match proto {
            Proto::V311 => self.port_v311,
            Proto::V5 => self.port_v5,
        }
    }

    /// The port of `Setup::listeners[i]` (Mosquitto only, which serves both versions on it).
    pub fn listener_port(&self, i: usize) -> u16 {
        let m = self
            .mosquitto
            .as_ref()
            .expect("extra listeners need Mosquitto");
        m.extra_ports[i]
    }

    /// `mqttcli SUBCOMMAND -h 127.0.0.1 -p PORT -V VERSION`, environment cleaned.
    pub fn cmd(&self, subcommand: &str, proto: Proto) -> Command {
        super::at(subcommand, self.port(proto), proto)
    }

    fn with_mosquitto(bin: &Path, setup: &Setup) -> Broker {
        let mosquitto = Mosquitto::start(bin, setup);
        Broker {
            port_v311: mosquitto.port,
            port_v5: mosquitto.port,
            mosquitto: Some(mosquitto),
        }
    }
}

/// Stopping, stalling and restarting Mosquitto, for tests of lost connections.
impl Broker {
    fn process(&mut self) -> &mut Mosquitto {
        self.mosquitto
            .as_mut()
            .expect("only a Mosquitto broker can be stopped (see Broker::mosquitto)")
    }

    /// Mosquitto's process id, e.g. for SIGSTOP and SIGCONT.
    pub fn pid(&mut self) -> u32 {
        self.process().child.id()
    }

    /// Mosquitto's log so far (all its runs).
    pub fn log_text(&mut self) -> String {
        self.process().log_text()
    }

    /// Wait until Mosquitto's log has `count` lines containing `needle`, e.g. `Sending SUBACK
    /// to ID` (such lines need `log_type all` in `Setup::extra`); a failure showing the log
    /// after `deadline`.
    #[track_caller]
    pub fn wait_log(&mut self, needle: &str, count: usize, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            let log = self.log_text();
            if log.lines().filter(|l| l.contains(needle)).count() >= count {
                return;
            }
            assert!(
                Instant::now() < end,
                "no {count} line(s) with '{needle}' in mosquitto's log after {deadline:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send `sig` ("TERM", "KILL", …) to Mosquitto and wait for it to exit. On TERM it writes
    /// its persistence file first (`Setup::persistence`); on KILL it does not.
    pub fn stop_process(&mut self, sig: &str) {
        let m = self.process();
        super::signal(m.child.id(), sig);
        let end = Instant::now() + READY_DEADLINE;
        while m.child.try_wait().expect("try_wait mosquitto").is_none() {
            assert!(
                Instant::now() < end,
                "mosquitto did not exit within {READY_DEADLINE:?} of SIG{sig}:\n{}",
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Start Mosquitto again after `stop_process`, with the same configuration on the same
    /// port(s), appending to the same log. Returns once it accepts connections.
    pub fn restart(&mut self) {
        self.process().restart();
    }
}

impl Mosquitto {
    fn restart(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait mosquitto").is_some(),
            "restart: mosquitto is still running (stop_process first)"
        );
        let deadline = Instant::now() + READY_DEADLINE;
        'spawn: loop {
            let before = self.log_text().len();
            let log = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log)
                .expect("open mosquitto.log");
            self.child = Command::new(&self.bin)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .arg("-c")
                .arg(self._dir.path().join("mosquitto.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn mosquitto");
            loop {
                let log = self.log_text();
                let this_run = log.get(before..).unwrap_or("");
                if let Some(status) = self.child.try_wait().expect("try_wait mosquitto") {
                    // The port can be held for a moment by a socket of the previous run.
                    if this_run.contains("Address already in use") && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                        continue 'spawn;
                    }
                    panic!("mosquitto exited while restarting ({status}):\n{log}");
                }
                if this_run.contains(" running")
                    && accepts(self.port)
                    && self.extra_ports.iter().all(|&p| accepts(p))
                {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "mosquitto not ready on port {} after {READY_DEADLINE:?} (restart):\n{log}",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Written to the real stderr: libtest captures `eprintln!` of passing tests.
fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The Mosquitto to use, or None for the rumqttd fallback (see the module comment).
fn mosquitto_binary() -> Option<PathBuf> {
    let found = super::programs::find("mosquitto");
    assert!(
        found.is_some() || std::env::var("MQTTCLI_REQUIRE_MOSQUITTO").as_deref() != Ok("1"),
        "mosquitto is required (MQTTCLI_REQUIRE_MOSQUITTO=1) but was not found when the tests \
         were built (build.rs)"
    );
    found
}

/// A port that was free a moment ago. Another process may take it before the broker binds it,
/// so startup checks that it is really our broker that answers.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

struct Mosquitto {
    child: Child,
    /// The program and environment it was started with, for `Broker::restart`.
    bin: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    extra_ports: Vec<u16>,
    log: PathBuf,
    _dir: TempDir,
}

impl Mosquitto {
    fn start(bin: &Path, setup: &Setup) -> Mosquitto {
        // A port picked by free_port() can be taken before Mosquitto binds it: try a few.
        for _ in 0..5 {
            if let Some(m) = Mosquitto::try_start(bin, setup) {
                return m;
            }
        }
        panic!("mosquitto could not bind a free port in 5 attempts");
    }

    fn try_start(bin: &Path, setup: &Setup) -> Option<Mosquitto> {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut extra_ports: Vec<u16> = Vec::new();
        while extra_ports.len() < setup.listeners.len() {
            let p = free_port();
            if p != port && !extra_ports.contains(&p) {
                extra_ports.push(p);
            }
        }
        let mut conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous {}\n\
             persistence false\n\
             log_dest stderr\n\
             # Started as root, mosquitto would switch to user `mosquitto`, who cannot read the\n\
             # 0700 tempdir; this keeps the current user (and is ignored when not root).\n\
             user root\n\
             # Tests push 100 000 QoS 1 messages through one subscriber: queue them all\n\
             # instead of dropping those above the default 1000. (Not 0 for unlimited: 2.0.11\n\
             # then drops the connection after every PUBACK/PUBREC that refuses a publish.)\n\
             max_queued_messages 1000000\n",
            setup.anonymous
        );
        if !setup.users.is_empty() {
            let file = dir.path().join("passwords");
            let passwd = super::programs::program("mosquitto_passwd");
            for (i, (user, pass)) in setup.users.iter().enumerate() {
                let mut cmd = Command::new(&passwd);
                cmd.arg("-b");
                if i == 0 {
                    cmd.arg("-c");
                }
                let status = cmd
                    .arg(&file)
                    .args([user, pass])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed: {status}");
            }
            conf += &format!("password_file {}\n", file.display());
        }
        if !setup.acl.is_empty() {
            let file = dir.path().join("acl");
            std::fs::write(&file, setup.acl.join("\n") + "\n").expect("write acl file");
            conf += &format!("acl_file {}\n", file.display());
        }
        if setup.persistence {
            // Overrides `persistence false` above.
            conf += &format!(
                "persistence true\npersistence_location {}/\n",
                dir.path().display()
            );
        }
        for line in setup.extra {
            conf += line;
            conf += "\n";
        }
        for (lines, extra) in setup.listeners.iter().zip(&extra_ports) {
            conf += &format!("\nlistener {extra} 127.0.0.1\n{}\n", lines.trim_end());
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let child = Command::new(bin)
            .envs(setup.env.iter().map(|(k, v)| (k, v)))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create mosquitto.log"))
            .spawn()
            .expect("spawn mosquitto");
        let mut m = Mosquitto {
            child,
            bin: bin.to_path_buf(),
            env: setup
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            port,
            extra_ports,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = m.child.try_wait().expect("try_wait mosquitto") {
                let log = m.log_text();
                // The second is how a websockets listener reports a taken port.
                if log.contains("Address already in use")
                    || log.contains("Unable to create websockets listener")
                {
                    return None;
                }
                panic!("mosquitto exited during startup ({status}):\n{log}");
            }
            // "running" is logged once the listener is bound, so whoever accepts is our broker.
            if m.log_text().contains(" running")
                && accepts(port)
                && m.extra_ports.iter().all(|&p| accepts(p))
            {
                return Some(m);
            }
            if Instant::now() > deadline {
                panic!(
                    "mosquitto not ready on port {port} after {READY_DEADLINE:?}:\n{}",
                    m.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- mosquitto log (port {}) ---\n{}",
                self.port,
                self.log_text()
            );
        }
    }
}

/// (v3.1.1 port, v5 port) of the one rumqttd of this test binary.
static RUMQTTD: OnceLock<(u16, u16)> = OnceLock::new();

fn start_rumqttd() -> (u16, u16) {
    let (port_v311, port_v5) = (free_port(), free_port());
    let config = super::rumqttd_config::config(port_v311, port_v5);
    let mut broker = rumqttd::Broker::new(config);
    // start() blocks for ever (there is no shutdown) and only logs a failed bind.
    std::thread::spawn(move || {
        let _ = broker.start();
    });
    let deadline = Instant::now() + READY_DEADLINE;
    while !(accepts(port_v311) && accepts(port_v5)) {
        assert!(
            Instant::now() < deadline,
            "rumqttd not accepting on ports {port_v311}/{port_v5} after {READY_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    loud(&format!(
        "NOTE: no mosquitto, using the in-process rumqttd fallback (ports {port_v311}, {port_v5})"
    ));
    (port_v311, port_v5)
}
