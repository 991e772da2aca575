//! The brokers of the broker matrix (tests/cases/matrix.rs), each a process of its own started
//! for one test on a free port of 127.0.0.1 and killed by PID when the test ends, passed or not:
//!
//! - Mosquitto: `Broker::anonymous_mosquitto` (tests/common/broker.rs).
//! - Aedes 1.2.0: `node tests/brokers/aedes.mjs`, from `.brokers/aedes` (`cfg(no_aedes)`).
//! - amqtt 0.12.1: its `amqtt` script, from `.brokers/amqtt` (`cfg(no_amqtt)`).
//! - rumqttd 0.20: examples/rumqttd.rs, the dev-dependency in a process of its own (`cargo
//!   test` builds it; see `rumqttd_binary`).
//!
//! `.ci/run` installs Aedes and amqtt; build.rs says which are there (see its comment).

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::broker::free_port;
use super::{Broker, Proto};

/// Starting a broker on a loaded machine: Python and Node take a while to load.
const READY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mosquitto,
    Aedes,
    Amqtt,
    Rumqttd,
}

/// One broker of the matrix, running until dropped.
pub struct MatrixBroker {
    pub kind: Kind,
    port_v311: u16,
    port_v5: u16,
    /// The `Broker` or `Process`, kept for its `Drop`, which stops the broker.
    _running: Box<dyn std::any::Any>,
}

impl MatrixBroker {
    #[track_caller]
    pub fn start(kind: Kind) -> MatrixBroker {
        match kind {
            Kind::Mosquitto => {
                let broker = Broker::anonymous_mosquitto();
                MatrixBroker {
                    kind,
                    port_v311: broker.port(Proto::V311),
                    port_v5: broker.port(Proto::V5),
                    _running: Box::new(broker),
                }
            }
            Kind::Aedes => {
                let (process, port) = start_aedes();
                MatrixBroker {
                    kind,
                    port_v311: port,
                    port_v5: port,
                    _running: Box::new(process),
                }
            }
            Kind::Amqtt => {
                let (process, port) = start_amqtt();
                MatrixBroker {
                    kind,
                    port_v311: port,
                    port_v5: port,
                    _running: Box::new(process),
                }
            }
            Kind::Rumqttd => {
                let (process, port_v311, port_v5) = start_rumqttd();
                MatrixBroker {
                    kind,
                    port_v311,
                    port_v5,
                    _running: Box::new(process),
                }
            }
        }
    }

    /// Where to connect with `proto` (rumqttd serves each version on a port of its own).
    pub fn port(&self, proto: Proto) -> u16 {
        match proto {
            Proto::V311 => self.port_v311,
            Proto::V5 => self.port_v5,
        }
    }

    /// `mqttcli SUBCOMMAND -h 127.0.0.1 -p PORT -V VERSION` and the broker's `login` options.
    pub fn cmd(&self, subcommand: &str, proto: Proto) -> Command {
        let mut cmd = super::at(subcommand, self.port(proto), proto);
        cmd.args(self.login());
        cmd
    }

    /// Options every client of this broker needs: amqtt keeps sessions only for clients that
    /// log in (see `start_amqtt`), so there everyone gives a user name.
    pub fn login(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Amqtt => &["-u", AMQTT_USER],
            _ => &[],
        }
    }
}

/// Any name will do: amqtt's anonymous-auth plugin admits every client that gives one.
const AMQTT_USER: &str = "matrix";

/// A broker process with its output in a log file of its tempdir: killed by PID on drop, its
/// log printed if the test failed.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Process {
    /// Spawn `cmd` with stdout and stderr going to `DIR/NAME.log`.
    fn spawn(name: &'static str, mut cmd: Command, dir: TempDir) -> Process {
        let log = dir.path().join(format!("{name}.log"));
        let file = File::create(&log).expect("create the broker's log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log's handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        Process {
            name,
            child,
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Wait until `ready` finds what it needs in the log (and returns it), or the process exits
    /// (None: `Err` with its exit code and log).
    fn wait_ready<T>(
        &mut self,
        ready: impl Fn(&str) -> Option<T>,
    ) -> Result<T, (Option<i32>, String)> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let log = self.log_text();
            if let Some(found) = ready(&log) {
                return Ok(found);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err((status.code(), self.log_text()));
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {READY_DEADLINE:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log_text());
        }
    }
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Aedes listens on a port the kernel picks (so no other process can take it first) and
/// prints it.
fn start_aedes() -> (Process, u16) {
    let modules = super::programs::program("aedes");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/brokers/aedes.mjs");
    let mut cmd = Command::new(super::programs::program("node"));
    cmd.arg(script).arg(modules);
    let mut process = Process::spawn("aedes", cmd, tempdir());
    let port = process
        .wait_ready(|log| {
            log.lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(|p| p.trim().parse::<u16>().expect("aedes's port"))
        })
        .unwrap_or_else(|(code, log)| panic!("aedes exited during startup ({code:?}):\n{log}"));
    (process, port)
}

/// amqtt with its anonymous-auth plugin set to refuse clients without a user name: with it
/// allowing them, every session counts as anonymous and amqtt keeps none (FIELD-NOTES.md), so
/// a persistent session could not be tested.
fn start_amqtt() -> (Process, u16) {
    let home = super::programs::program("amqtt");
    // A port picked by free_port() can be taken before amqtt binds it: try a few.
    for _ in 0..5 {
        let dir = tempdir();
        let port = free_port();
        let config = dir.path().join("amqtt.yaml");
        std::fs::write(
            &config,
            format!(
                "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n\
                 plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    \
                 allow_anonymous: false\n"
            ),
        )
        .expect("write amqtt.yaml");
        let mut cmd = Command::new(home.join("bin/amqtt"));
        // The install is `pip install --target`: its packages are not on Python's own path.
        cmd.env("PYTHONPATH", &home).arg("-c").arg(&config);
        let mut process = Process::spawn("amqtt", cmd, dir);
        // A failed bind is logged, and the process then keeps running without a listener.
        let bound = process.wait_ready(|log| {
            if log.contains("Broker startup failed") {
                Some(false)
            } else {
                log.contains(&format!("bind to 127.0.0.1:{port}"))
                    .then_some(true)
            }
        });
        match bound {
            Ok(true) if accepts(port) => return (process, port),
            Ok(_) if process.log_text().contains("address already in use") => continue,
            Ok(_) => panic!("amqtt did not start:\n{}", process.log_text()),
            Err((code, log)) => panic!("amqtt exited during startup ({code:?}):\n{log}"),
        }
    }
    panic!("amqtt could not bind a free port in 5 attempts");
}

/// examples/rumqttd.rs on two free ports (3.1.1, 5).
fn start_rumqttd() -> (Process, u16, u16) {
    let bin = rumqttd_binary();
    for _ in 0..5 {
        let (v311, v5) = (free_port(), free_port());
        if v311 == v5 {
            continue;
        }
        let mut cmd = Command::new(&bin);
        cmd.args([v311.to_string(), v5.to_string()]);
        let mut process = Process::spawn("rumqttd", cmd, tempdir());
        match process.wait_ready(|log| log.lines().any(|l| l == "ready").then_some(())) {
            Ok(()) => return (process, v311, v5),
            // The example's code for a port that was taken.
            Err((Some(98), _)) => continue,
            Err((code, log)) => panic!("rumqttd exited during startup ({code:?}):\n{log}"),
        }
    }
    panic!("rumqttd could not bind free ports in 5 attempts");
}

/// examples/rumqttd.rs as built beside this test binary. `cargo test` builds the examples;
/// `cargo test --test cli` does not: then `cargo build --example rumqttd` first. (Building it
/// from here would run a cargo inside `cargo test`, whose environment makes some build scripts
/// rerun, and the two builds would keep undoing each other.)
#[track_caller]
fn rumqttd_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/cli-HASH → target/debug/examples/rumqttd
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in target/PROFILE/deps")
        .join("examples")
        .join(format!("rumqttd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds it, `cargo test --test cli` does not \
         (run `cargo build --example rumqttd` first)",
        bin.display()
    );
    bin
}
