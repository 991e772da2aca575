//! The broker the tests talk to: a Mosquitto process per test, or a shared in-process rumqttd.
//!
//! - Mosquitto, if on PATH (Debian puts it in /usr/sbin), runs with a config written to a
//!   tempdir, listens on a free port of 127.0.0.1 and is killed by PID in `Drop`. Its log is
//!   printed when a test fails.
//! - Without Mosquitto, one rumqttd 0.20 per test binary runs on a thread (it cannot be shut
//!   down). Tests that need what it lacks (password files, ACLs, CONNACK refusals: it just drops
//!   the connection) print `SKIPPED (needs mosquitto): <test>` on stderr and return.
//!
//! Environment:
//! - `MQTTCLI_TEST_BROKER=rumqttd` forces the fallback (to check it on a machine that has
//!   Mosquitto); `=mosquitto` insists on Mosquitto.
//! - `MQTTCLI_REQUIRE_MOSQUITTO=1` (set by CI) turns a missing Mosquitto, or the fallback, into a
//!   test failure instead of a fallback or a skip.

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

    /// A Mosquitto broker set up as asked, or `None` after a loud skip line when there is none.
    pub fn mosquitto(test: &str, setup: &Setup) -> Option<Broker> {
        match mosquitto_binary() {
            Some(bin) => Some(Broker::with_mosquitto(&bin, setup)),
            None => {
                skip(test, "mosquitto");
                None
            }
        }
    }

    /// For tests that only work against Mosquitto (behaviour rumqttd does not have):
    /// false after a loud skip line when this is the rumqttd fallback.
    pub fn is_mosquitto(&self, test: &str) -> bool {
        if self.mosquitto.is_none() {
            skip(test, "mosquitto");
        }
        self.mosquitto.is_some()
    }

    pub fn port(&self, proto: Proto) -> u16 {
        match proto {
            Proto::V311 => self.port_v311,
            Proto::V5 => self.port_v5,
        }
    }

    /// `mqttcli SUBCOMMAND -h 127.0.0.1 -p PORT -V VERSION`, environment cleaned.
    pub fn cmd(&self, subcommand: &str, proto: Proto) -> Command {
        let mut cmd = super::mqttcli();
        cmd.arg(subcommand)
            .args(["-h", "127.0.0.1", "-p", &self.port(proto).to_string()])
            .args(["-V", proto.arg()]);
        cmd
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

/// Written to the real stderr: libtest captures `eprintln!` of passing tests.
fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Say loudly that `test` cannot run here, or fail it if CI requires Mosquitto.
pub fn skip(test: &str, needs: &str) {
    assert!(
        !env_is("MQTTCLI_REQUIRE_MOSQUITTO", "1"),
        "{test} needs {needs} (MQTTCLI_REQUIRE_MOSQUITTO=1)"
    );
    loud(&format!("SKIPPED (needs {needs}): {test}"));
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// The Mosquitto to use, or None for the rumqttd fallback (see the module comment).
fn mosquitto_binary() -> Option<PathBuf> {
    let forced_fallback = env_is("MQTTCLI_TEST_BROKER", "rumqttd");
    let found = find_program("mosquitto");
    let required =
        env_is("MQTTCLI_REQUIRE_MOSQUITTO", "1") || env_is("MQTTCLI_TEST_BROKER", "mosquitto");
    if required && (forced_fallback || found.is_none()) {
        panic!(
            "mosquitto is required (MQTTCLI_REQUIRE_MOSQUITTO=1 or MQTTCLI_TEST_BROKER=mosquitto) \
             but was not found on PATH (or MQTTCLI_TEST_BROKER=rumqttd was set)"
        );
    }
    found.filter(|_| !forced_fallback)
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
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
    port: u16,
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
            let passwd = find_program("mosquitto_passwd").expect("mosquitto_passwd not found");
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
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create mosquitto.log"))
            .spawn()
            .expect("spawn mosquitto");
        let mut m = Mosquitto {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = m.child.try_wait().expect("try_wait mosquitto") {
                let log = m.log_text();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("mosquitto exited during startup ({status}):\n{log}");
            }
            // "running" is logged once the listener is bound, so whoever accepts is our broker.
            if m.log_text().contains(" running") && accepts(port) {
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
    use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

    let server = |name: &str, port: u16| ServerSettings {
        name: name.into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            // Room for the 1 MiB payload tests plus topic and header.
            max_payload_size: 4 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let (port_v311, port_v5) = (free_port(), free_port());
    let config = Config {
        id: 0,
        // RouterConfig::default() is all zeros, which does not work.
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some([("v4".to_string(), server("v4", port_v311))].into()),
        v5: Some([("v5".to_string(), server("v5", port_v5))].into()),
        ..Default::default()
    };
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
