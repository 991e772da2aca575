//! Profiles and the environment, end to end: which broker, port and credentials the binary
//! really used, for each rung of flag > MQTT_HOST/MQTT_PORT/MQTT_USERNAME/MQTT_PASSWORD >
//! profile > default; which config file and profile are read (--config, MQTTCLI_CONFIG, the
//! platform file; --profile, MQTTCLI_PROFILE); the errors for an unknown profile, a password in
//! a file others can read, and an unset password_env.
//!
//! `mqttcli check -C 1 --json` is the probe: exit 0 means it went round a real broker, and its
//! `broker` field says where. The loser of each precedence case points at a port where nothing
//! listens (exit 3), or at a password the broker refuses (exit 4); Mosquitto's log names the
//! user each client connected as.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::broker::free_port;
use crate::common::{mqttcli, run, unique_id, Broker, Out, Proto, Setup};
use Proto::{V311, V5};

const ALICE: (&str, &str) = ("alice", "alice-pw-1");
const BOB: (&str, &str) = ("bob", "bob-pw-2");

/// Variables that steer where mqttcli connects, removed so that each test sets its own.
const PROFILE_ENV: [&str; 6] = [
    "MQTT_HOST",
    "MQTT_PORT",
    "MQTT_USERNAME",
    "MQTT_PASSWORD",
    "MQTTCLI_PROFILE",
    "MQTTCLI_CONFIG",
];

/// A home for config files; also the XDG_CONFIG_HOME of every command, so the platform's
/// default file is `<dir>/xdg/mqttcli/config.toml`, never the user's.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` (in the home, or under it) with `mode`, returning its path.
    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let file = self.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        set_mode(&file, mode);
        file
    }

    /// The platform's default config file for commands from `cmd`.
    fn default_config(&self, text: &str) -> PathBuf {
        self.write("xdg/mqttcli/config.toml", text, 0o600)
    }

    /// `mqttcli SUBCOMMAND` with none of PROFILE_ENV set and the default config in this home.
    fn cmd(&self, subcommand: &str) -> Command {
        let mut cmd = mqttcli();
        for name in PROFILE_ENV {
            cmd.env_remove(name);
        }
        cmd.env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .arg(subcommand);
        cmd
    }

    /// `mqttcli check -C 1 --json`: a round trip through whatever broker the settings name.
    fn check(&self) -> Command {
        let mut cmd = self.cmd("check");
        cmd.args(["-C", "1", "--json"]);
        cmd
    }
}

fn set_mode(file: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout_str())
        .unwrap_or_else(|e| panic!("not JSON ({e}) from {}:\n{}", out.what, out.stdout_str()))
}

/// The check went round the broker at `broker` (host:port).
#[track_caller]
fn assert_used(out: &Out, broker: &str) {
    out.assert_code(0);
    let r = json(out);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["broker"], broker, "{}", out.what);
}

/// The check tried `broker` and found nothing listening there.
#[track_caller]
fn assert_tried(out: &Out, broker: &str) {
    out.assert_code(3);
    let r = json(out);
    assert_eq!(r["broker"], broker, "{}", out.what);
    assert_eq!(
        out.stderr,
        format!(
            "mqttcli: error: check failed at the connect step: cannot connect to {broker}: connection refused: is the broker running, and is -p right?\n"
        )
    );
}

#[test]
fn profile_supplies_host_port_protocol_and_id_prefix() {
    let broker = Broker::start();
    let home = Home::new();
    let port = broker.port(V5);
    let file = home.write(
        "profiles.toml",
        &format!(
            "[profiles.local]\nhost = \"127.0.0.1\"\nport = {port}\nprotocol = 5\nid_prefix = \"prof-\"\n"
        ),
        0o644,
    );
    let out = run(home
        .check()
        .args(["--config", file.to_str().unwrap(), "--profile", "local"]));
    assert_used(&out, &format!("127.0.0.1:{port}"));
    let r = json(&out);
    assert_eq!(r["protocol"], "5.0");
    assert!(r["client_id"].as_str().unwrap().starts_with("prof-"), "{r}");
    // A flag beats the profile's protocol and prefix.
    let port = broker.port(V311);
    let out = run(home.check().args([
        "--config",
        file.to_str().unwrap(),
        "--profile",
        "local",
        "-V",
        "311",
        "-p",
        &port.to_string(),
        "-I",
        "flag-",
    ]));
    assert_used(&out, &format!("127.0.0.1:{port}"));
    let r = json(&out);
    assert_eq!(r["protocol"], "3.1.1");
    assert!(r["client_id"].as_str().unwrap().starts_with("flag-"), "{r}");
}

#[test]
fn port_precedence_flag_then_mqtt_port_then_profile_then_default() {
    let broker = Broker::start();
    let home = Home::new();
    let good = broker.port(V311);
    let closed = free_port();
    let profile = |port: u16| {
        home.write(
            &format!("p{port}.toml"),
            &format!("[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\n"),
            0o600,
        )
    };
    let with = |file: &Path| {
        let mut cmd = home.check();
        cmd.args(["--config", file.to_str().unwrap(), "--profile", "p"]);
        cmd
    };
    let (good_file, closed_file) = (profile(good), profile(closed));
    let at = |port: u16| format!("127.0.0.1:{port}");

    // The profile alone.
    assert_used(&run(&mut with(&good_file)), &at(good));
    assert_tried(&run(&mut with(&closed_file)), &at(closed));
    // MQTT_PORT beats the profile.
    assert_used(
        &run(with(&closed_file).env("MQTT_PORT", good.to_string())),
        &at(good),
    );
    assert_tried(
        &run(with(&good_file).env("MQTT_PORT", closed.to_string())),
        &at(closed),
    );
    // An empty MQTT_PORT is unset.
    assert_used(&run(with(&good_file).env("MQTT_PORT", "")), &at(good));
    // -p beats MQTT_PORT and the profile.
    assert_used(
        &run(with(&closed_file)
            .env("MQTT_PORT", closed.to_string())
            .args(["-p", &good.to_string()])),
        &at(good),
    );
    assert_tried(
        &run(with(&good_file)
            .env("MQTT_PORT", good.to_string())
            .args(["-p", &closed.to_string()])),
        &at(closed),
    );
    // A profile without a port: the default, 1883 (whether or not something listens there).
    let no_port = home.write("noport.toml", "[profiles.p]\nhost = \"127.0.0.1\"\n", 0o600);
    let out = run(with(&no_port).args(["--connect-timeout", "2s"]));
    assert_eq!(
        json(&out)["broker"],
        "127.0.0.1:1883",
        "{}",
        out.stdout_str()
    );
    // A bad MQTT_PORT is a usage error naming it, before anything else.
    run(with(&good_file).env("MQTT_PORT", "18x3")).assert_exact_error(
        2,
        "mqttcli: error: MQTT_PORT='18x3' is not a port number: set it to e.g. 1883, or unset it",
    );
}

/// Mosquitto listens on 127.0.0.1 only, so 127.0.0.2 (also loopback) refuses at once.
#[test]
fn host_precedence_flag_then_mqtt_host_then_profile_then_default() {
    let broker = Broker::start();
    let home = Home::new();
    let port = broker.port(V311);
    let profile = |host: &str| {
        home.write(
            &format!("{host}.toml"),
            &format!("[profiles.p]\nhost = \"{host}\"\nport = {port}\n"),
            0o600,
        )
    };
    let with = |file: &Path| {
        let mut cmd = home.check();
        cmd.args(["--config", file.to_str().unwrap(), "--profile", "p"]);
        cmd
    };
    let (good, bad) = ("127.0.0.1", "127.0.0.2");
    let (good_file, bad_file) = (profile(good), profile(bad));
    let at = |host: &str| format!("{host}:{port}");

    assert_used(&run(&mut with(&good_file)), &at(good));
    assert_tried(&run(&mut with(&bad_file)), &at(bad));
    assert_used(&run(with(&bad_file).env("MQTT_HOST", good)), &at(good));
    assert_tried(&run(with(&good_file).env("MQTT_HOST", bad)), &at(bad));
    assert_used(
        &run(with(&bad_file).env("MQTT_HOST", bad).args(["-h", good])),
        &at(good),
    );
    assert_tried(
        &run(with(&good_file).env("MQTT_HOST", good).args(["-h", bad])),
        &at(bad),
    );
    // Neither flag, variable nor profile: localhost.
    let no_host = home.write(
        "nohost.toml",
        &format!("[profiles.p]\nport = {port}\n"),
        0o600,
    );
    assert_used(&run(&mut with(&no_host)), &format!("localhost:{port}"));
    // MQTT_HOST and MQTT_PORT with no profile at all.
    assert_used(
        &run(home
            .check()
            .env("MQTT_HOST", good)
            .env("MQTT_PORT", port.to_string())),
        &at(good),
    );
}

/// A Mosquitto with two users and no anonymous access.
fn two_user_broker() -> Broker {
    Broker::mosquitto(&Setup {
        users: &[ALICE, BOB],
        ..Setup::default()
    })
}

/// The user Mosquitto logged for the client `id`, from its
/// `New client connected from … as ID (p2, c1, k60, u'USER').` line.
#[track_caller]
fn logged_user(broker: &mut Broker, id: &str) -> String {
    let log = broker.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("New client connected") && l.contains(&format!(" as {id} ")))
        .unwrap_or_else(|| panic!("no connect line for {id} in:\n{log}"));
    line.split("u'")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no username in '{line}'"))
        .to_string()
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn credential_precedence_flag_then_environment_then_profile() {
    let mut broker = two_user_broker();
    let home = Home::new();
    let port = broker.port(V311);
    let profile = |name: &str, body: &str| {
        home.write(
            &format!("{name}.toml"),
            &format!("[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\n{body}"),
            0o600,
        )
    };
    let alice_file = profile(
        "alice",
        &format!("username = \"{}\"\npassword = \"{}\"\n", ALICE.0, ALICE.1),
    );
    let bob_env = profile(
        "bob",
        &format!("username = \"{}\"\npassword_env = \"BOB_PW\"\n", BOB.0),
    );
    // Each case: (profile file, environment, flags, expected user or None for refused).
    type Case<'a> = (
        &'a Path,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        // The profile's username and password.
        (&alice_file, vec![], vec![], Some(ALICE.0)),
        // password_env names the variable that holds it.
        (&bob_env, vec![("BOB_PW", BOB.1)], vec![], Some(BOB.0)),
        // MQTT_PASSWORD beats the profile's password...
        (&alice_file, vec![("MQTT_PASSWORD", "wrong")], vec![], None),
        // ...and its password_env.
        (
            &bob_env,
            vec![("BOB_PW", BOB.1), ("MQTT_PASSWORD", "wrong")],
            vec![],
            None,
        ),
        // MQTT_USERNAME and MQTT_PASSWORD beat the profile's.
        (
            &bob_env,
            vec![
                ("BOB_PW", BOB.1),
                ("MQTT_USERNAME", ALICE.0),
                ("MQTT_PASSWORD", ALICE.1),
            ],
            vec![],
            Some(ALICE.0),
        ),
        // MQTT_USERNAME alone changes the user but keeps the profile's password: refused.
        (&alice_file, vec![("MQTT_USERNAME", BOB.0)], vec![], None),
        // -u and -P beat the environment and the profile.
        (
            &alice_file,
            vec![("MQTT_USERNAME", ALICE.0), ("MQTT_PASSWORD", ALICE.1)],
            vec!["-u", BOB.0, "-P", BOB.1],
            Some(BOB.0),
        ),
        (
            &alice_file,
            vec![("MQTT_PASSWORD", ALICE.1)],
            vec!["-P", "wrong"],
            None,
        ),
    ];
    for (i, (file, env, flags, user)) in cases.iter().enumerate() {
        let id = unique_id();
        let mut cmd = home.check();
        cmd.args([
            "--config",
            file.to_str().unwrap(),
            "--profile",
            "p",
            "-i",
            &id,
        ])
        .envs(env.iter().copied())
        .args(flags);
        let out = run(&mut cmd);
        let what = format!("case {i}: env {env:?}, flags {flags:?}");
        match user {
            Some(user) => {
                assert_used(&out, &format!("127.0.0.1:{port}"));
                assert_eq!(&logged_user(&mut broker, &id), user, "{what}");
            }
            None => {
                out.assert_code(4);
                assert!(
                    out.stderr
                        .contains("refused the connection: not authorised"),
                    "{what}: {}",
                    out.stderr
                );
            }
        }
        for secret in [ALICE.1, BOB.1, "wrong"] {
            assert!(
                !out.stderr.contains(secret) && !out.stdout_str().contains(secret),
                "{what}: a password was printed"
            );
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn profile_password_file_is_relative_to_the_config_file() {
    let mut broker = two_user_broker();
    let home = Home::new();
    let port = broker.port(V5);
    home.write("conf/secrets/alice.txt", &format!("{}\n", ALICE.1), 0o600);
    let file = home.write(
        "conf/config.toml",
        &format!(
            "[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"{}\"\npassword_file = \"secrets/alice.txt\"\n",
            ALICE.0
        ),
        // A password_file (not a password) may sit in a file others can read.
        0o644,
    );
    let id = unique_id();
    // Run from elsewhere: the path is taken from the config file's directory.
    let out = run(home.check().current_dir("/").args([
        "--config",
        file.to_str().unwrap(),
        "--profile",
        "p",
        "-i",
        &id,
    ]));
    assert_used(&out, &format!("127.0.0.1:{port}"));
    assert_eq!(logged_user(&mut broker, &id), ALICE.0);
}

#[test]
fn unset_password_env_is_a_usage_error() {
    let home = Home::new();
    let file = home.write(
        "config.toml",
        "[profiles.ci]\nport = 1\nusername = \"u\"\npassword_env = \"CI_BROKER_PASSWORD\"\n",
        0o600,
    );
    let out = run(home.check().env_remove("CI_BROKER_PASSWORD").args([
        "--config",
        file.to_str().unwrap(),
        "--profile",
        "ci",
    ]));
    out.assert_exact_error(
        2,
        &format!(
            "mqttcli: error: profile 'ci' in {}: password_env names CI_BROKER_PASSWORD, which is not set: export CI_BROKER_PASSWORD, or remove password_env",
            file.display()
        ),
    );
}

#[test]
fn config_file_and_profile_selection() {
    let broker = Broker::start();
    let home = Home::new();
    let good = broker.port(V311);
    let closed = free_port();
    let body = |port: u16| format!("[profiles.p]\nhost = \"127.0.0.1\"\nport = {port}\n");
    let good_file = home.write("good.toml", &body(good), 0o600);
    let closed_file = home.write("closed.toml", &body(closed), 0o600);
    let (good_at, closed_at) = (format!("127.0.0.1:{good}"), format!("127.0.0.1:{closed}"));
    let path = |p: &Path| p.to_str().unwrap().to_string();

    // --config beats MQTTCLI_CONFIG.
    assert_used(
        &run(home.check().env("MQTTCLI_CONFIG", &closed_file).args([
            "--config",
            &path(&good_file),
            "--profile",
            "p",
        ])),
        &good_at,
    );
    assert_tried(
        &run(home.check().env("MQTTCLI_CONFIG", &good_file).args([
            "--config",
            &path(&closed_file),
            "--profile",
            "p",
        ])),
        &closed_at,
    );
    // MQTTCLI_CONFIG beats the platform's file, which is used when neither is given.
    home.default_config(&body(closed));
    assert_used(
        &run(home
            .check()
            .env("MQTTCLI_CONFIG", &good_file)
            .args(["--profile", "p"])),
        &good_at,
    );
    assert_tried(&run(home.check().args(["--profile", "p"])), &closed_at);
    home.default_config(&body(good));
    assert_used(&run(home.check().args(["--profile", "p"])), &good_at);

    // MQTTCLI_PROFILE picks the profile when --profile is absent; --profile beats it.
    let two = home.write(
        "two.toml",
        &format!(
            "[profiles.good]\nhost = \"127.0.0.1\"\nport = {good}\n\n[profiles.closed]\nhost = \"127.0.0.1\"\nport = {closed}\n"
        ),
        0o600,
    );
    let with_env = |profile: &str| {
        let mut cmd = home.check();
        cmd.env("MQTTCLI_CONFIG", &two)
            .env("MQTTCLI_PROFILE", profile);
        cmd
    };
    assert_used(&run(&mut with_env("good")), &good_at);
    assert_tried(&run(&mut with_env("closed")), &closed_at);
    assert_used(
        &run(with_env("closed").args(["--profile", "good"])),
        &good_at,
    );
    assert_tried(
        &run(with_env("good").args(["--profile", "closed"])),
        &closed_at,
    );

    // No profile named: no file is read, not even a broken one.
    let broken = home.write("broken.toml", "this is not toml [", 0o600);
    assert_used(
        &run(home.check().env("MQTTCLI_CONFIG", &broken).args([
            "-h",
            "127.0.0.1",
            "-p",
            &good.to_string(),
        ])),
        &good_at,
    );
    // --config without a profile is a mistake.
    run(home.check().args(["--config", &path(&good_file)])).assert_exact_error(
        2,
        &format!(
            "mqttcli: error: --config {} names the profiles file: choose a profile with --profile NAME",
            good_file.display()
        ),
    );
    // Profiles work for every subcommand that connects.
    let topic = crate::common::unique_topic() + "profile";
    run(home.cmd("pub").args([
        "--config",
        &path(&good_file),
        "--profile",
        "p",
        "-t",
        &topic,
        "-m",
        "x",
    ]))
    .assert_ok(b"");
}

#[test]
fn unknown_profile_names_the_known_ones() {
    let home = Home::new();
    let file = home.write(
        "config.toml",
        "[profiles.prod]\nhost = \"a\"\n\n[profiles.local]\nport = 1\n\n[profiles.ci]\n",
        0o600,
    );
    for sub in ["check", "sub", "pub", "rr"] {
        let mut cmd = home.cmd(sub);
        cmd.args(["--config", file.to_str().unwrap(), "--profile", "staging"]);
        match sub {
            "sub" => cmd.args(["-t", "a"]),
            "pub" | "rr" => cmd.args(["-t", "a", "-m", "x"]),
            _ => &mut cmd,
        };
        run(&mut cmd).assert_exact_error(
            2,
            &format!(
                "mqttcli: error: no profile 'staging' in {} (known profiles: ci, local, prod): add a [profiles.staging] table, or pick one of those with --profile",
                file.display()
            ),
        );
    }
    let empty = home.write("empty.toml", "# nothing yet\n", 0o600);
    run(home
        .check()
        .args(["--config", empty.to_str().unwrap(), "--profile", "x"]))
    .assert_exact_error(
        2,
        &format!(
            "mqttcli: error: no profile 'x' in {} (it has none): add a [profiles.x] table, or pick one of those with --profile",
            empty.display()
        ),
    );
    // The platform's file is missing: the message says where it looked and how to point
    // elsewhere.
    let default = home.path().join("xdg/mqttcli/config.toml");
    run(home.check().args(["--profile", "x"])).assert_exact_error(
        2,
        &format!(
            "mqttcli: error: profile 'x': cannot read the config file {}: No such file or directory (os error 2): create it, or point --config (or MQTTCLI_CONFIG) at it",
            default.display()
        ),
    );
}

#[test]
fn a_password_in_a_file_others_can_read_is_refused() {
    let home = Home::new();
    let secret = "pr0file-s3cret";
    let text = format!("[profiles.p]\nport = 1\nusername = \"u\"\npassword = \"{secret}\"\n");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let file = home.write("config.toml", &text, mode);
        let message = format!(
            "mqttcli: error: profile 'p' holds a password, but {file} can be read by other users (mode {mode:03o}): run chmod 600 {file}, or use password_file or password_env instead",
            file = file.display()
        );
        let args = ["--config", file.to_str().unwrap(), "--profile", "p"];
        run(home.check().args(args)).assert_exact_error(2, &message);
        // Not even -d prints the password.
        let out = run(home.check().args(args).arg("-d"));
        out.assert_code(2);
        assert!(
            out.stderr.ends_with(&format!("{message}\n")),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(secret) && !out.stdout_str().contains(secret),
            "the password was printed:\n{}",
            out.stderr
        );
    }
    // Private again: accepted (and refused by nothing at port 1 instead).
    let file = home.write("config.toml", &text, 0o600);
    let out = run(home.check().args([
        "--config",
        file.to_str().unwrap(),
        "--profile",
        "p",
        "-h",
        "127.0.0.1",
    ]));
    assert_tried(&out, "127.0.0.1:1");
    assert!(!out.stderr.contains(secret) && !out.stdout_str().contains(secret));
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn a_password_in_a_private_profile_logs_in() {
    let mut broker = two_user_broker();
    let home = Home::new();
    let port = broker.port(V5);
    let file = home.default_config(&format!(
        "[profiles.bob]\nhost = \"127.0.0.1\"\nport = {port}\nprotocol = \"mqttv5\"\nusername = \"{}\"\npassword = \"{}\"\n",
        BOB.0, BOB.1
    ));
    assert!(file.ends_with("mqttcli/config.toml"));
    let id = unique_id();
    let out = run(home
        .check()
        .env("MQTTCLI_PROFILE", "bob")
        .args(["-i", &id, "-d"]));
    assert_used(&out, &format!("127.0.0.1:{port}"));
    assert_eq!(json(&out)["protocol"], "5.0");
    assert_eq!(logged_user(&mut broker, &id), BOB.0);
    assert!(!out.stderr.contains(BOB.1), "password on stderr with -d");
}
