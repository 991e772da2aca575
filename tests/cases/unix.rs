//! `--unix PATH`: a Mosquitto listening on a Unix-domain socket, and the flags that cannot go
//! with it (usage errors, exit 2).

use std::path::{Path, PathBuf};

use crate::common::{mqttcli, run, subscriber, unique_topic, Broker, Proto, Setup};
use Proto::{V311, V5};

/// A Mosquitto with a Unix-socket listener besides its TCP one, and the socket's path.
fn unix_broker(dir: &Path) -> (Broker, PathBuf) {
    let socket = dir.join("mqtt.sock");
    let listener = format!("listener 0 {}", socket.display());
    let broker = Broker::mosquitto(&Setup {
        anonymous: true,
        extra: &[&listener],
        ..Setup::default()
    });
    // Mosquitto opens every listener before it logs "running", which Broker waits for.
    assert!(
        socket.exists(),
        "mosquitto made no socket at {}",
        socket.display()
    );
    (broker, socket)
}

/// `mqttcli SUBCOMMAND --unix SOCKET -V VERSION`, environment cleaned.
fn on_socket(subcommand: &str, socket: &Path, proto: Proto) -> std::process::Command {
    let mut cmd = mqttcli();
    cmd.arg(subcommand)
        .arg("--unix")
        .arg(socket)
        .args(["-V", proto.arg()]);
    cmd
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn pub_and_sub_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, socket) = unix_broker(dir.path());
    for proto in [V311, V5] {
        let topic = unique_topic() + "unix";
        // One side on the socket, the other on TCP: it is the same broker.
        let sub = subscriber(
            on_socket("sub", &socket, proto).args(["-t", &topic, "-q", "2", "-C", "2", "-W", "30"]),
        );
        run(on_socket("pub", &socket, proto).args([
            "-t",
            &topic,
            "-q",
            "1",
            "-m",
            "over the socket",
        ]))
        .assert_ok(b"");
        run(broker
            .cmd("pub", proto)
            .args(["-t", &topic, "-q", "2", "-m", "over TCP"]))
        .assert_ok(b"");
        sub.finish().assert_ok(b"over the socket\nover TCP\n");
    }
}

#[test]
fn a_missing_socket_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    run(on_socket("pub", &socket, V311).args(["-t", "t", "-m", "x"])).assert_exact_error(
        3,
        &format!(
            "mqttcli: error: cannot connect to {}: No such file or directory (os error 2)",
            socket.display()
        ),
    );
}

/// Whatever names a host or asks for what a local socket does not carry is refused before
/// anything connects: one line naming both flags, exit 2.
#[test]
fn flags_that_cannot_go_with_unix_are_usage_errors() {
    let cases: [(&[&str], &str); 8] = [
        (&["-h", "localhost"], "-h/--host"),
        (&["-p", "1883"], "-p/--port"),
        (&["-L", "mqtt://localhost"], "-L/--url"),
        (&["--tls"], "TLS"),
        (&["--cafile", "ca.pem"], "TLS"),
        (&["--ws"], "WebSocket"),
        (&["--proxy", "socks5h://127.0.0.1:1080"], "--proxy"),
        (&["--proxy", "http://127.0.0.1:3128"], "--proxy"),
    ];
    for (args, named) in cases {
        run(on_socket("pub", Path::new("/run/mqtt.sock"), V311)
            .args(args)
            .args(["-t", "t", "-m", "x"]))
        .assert_error(2, &["--unix /run/mqtt.sock", "cannot go with", named]);
    }
}

/// Environment proxies are for remote hosts: a local socket ignores them.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn environment_proxies_and_host_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, socket) = unix_broker(dir.path());
    run(on_socket("pub", &socket, V5)
        .args(["-t", "t", "-m", "x"])
        .env("ALL_PROXY", "socks5h://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("MQTT_HOST", "does-not-resolve.invalid")
        .env("MQTT_PORT", "8883"))
    .assert_ok(b"");
}

/// A profile can hold the socket and MQTT 3.1 (`unix`, `protocol = 31`, the path relative to
/// the file): Mosquitto logs the client on it as MQTT 3.1 (`p1`). A flag that says where the
/// broker is (`-h`, `-p`, `-L`) or `MQTT_HOST` ranks above the profile and wins; a flag the
/// socket cannot carry is the same usage error as with --unix, naming the profile.
#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn a_profile_holds_the_socket_and_mqtt_3_1() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, _socket) = unix_broker(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[profiles.local]\nunix = \"mqtt.sock\"\nprotocol = 31\nid_prefix = \"sock-\"\n",
    )
    .unwrap();
    let profile = |subcommand: &str| {
        let mut cmd = mqttcli();
        for name in [
            "MQTT_HOST",
            "MQTT_PORT",
            "MQTTCLI_PROFILE",
            "MQTTCLI_CONFIG",
        ] {
            cmd.env_remove(name);
        }
        cmd.arg(subcommand)
            .arg("--config")
            .arg(&config)
            .args(["--profile", "local"]);
        cmd
    };
    let topic = unique_topic() + "profile";
    run(profile("pub").args(["-t", &topic, "-m", "x", "-i", "sock-pub"])).assert_ok(b"");
    let log = broker.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("as sock-pub (p1,") && l.contains("New client connected")),
        "{log}"
    );

    // MQTT_HOST, then -h with -p, name another broker: TCP, not the socket.
    let tcp = broker.port(V311);
    run(profile("pub")
        .args(["-t", &topic, "-m", "x", "-i", "tcp-env"])
        .env("MQTT_HOST", "127.0.0.1")
        .env("MQTT_PORT", tcp.to_string()))
    .assert_ok(b"");
    run(profile("pub")
        .args(["-t", &topic, "-m", "x", "-i", "tcp-flag"])
        .args(["-h", "127.0.0.1", "-p", &tcp.to_string()]))
    .assert_ok(b"");
    let log = broker.log_text();
    for id in ["tcp-env", "tcp-flag"] {
        assert!(
            log.lines()
                .any(|l| l.contains("from 127.0.0.1:") && l.contains(&format!("as {id} (p1,"))),
            "{id}: {log}"
        );
    }

    run(profile("pub").args(["-t", "t", "-m", "x", "--tls"]))
        .assert_error(2, &["profile 'local'", "unix = ", "cannot go with", "TLS"]);
}
