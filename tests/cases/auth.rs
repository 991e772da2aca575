//! Credentials against a Mosquitto with a password file (rumqttd drops a refused client without a
//! CONNACK, so these need Mosquitto).

use crate::common::{run, subscriber, unique_topic, Broker, Proto, Setup};
use Proto::{V311, V5};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

fn password_broker(anonymous: bool) -> Broker {
    let users = [(USER, PASSWORD)];
    Broker::mosquitto(&Setup {
        users: &users,
        anonymous,
        ..Setup::default()
    })
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wrong_password_exits_4_with_the_connack_reason() {
    let broker = password_broker(false);
    for proto in [V311, V5] {
        for sub in ["pub", "sub"] {
            let mut cmd = broker.cmd(sub, proto);
            cmd.args(["-t", "a", "-u", USER, "-P", "hunter2"]);
            if sub == "pub" {
                cmd.args(["-m", "x"]);
            } else {
                cmd.args(["-W", "30"]);
            }
            let out = run(&mut cmd);
            out.assert_error(4, &["not authori|notauthori|bad user|badusername"]);
            assert!(!out.stderr.contains("hunter2"), "password leaked");
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn password_never_appears_on_stderr_even_with_debug() {
    let broker = password_broker(false);
    let topic = unique_topic() + "secret";
    for (password, code) in [("hunter2", 4), (PASSWORD, 0)] {
        let url = format!(
            "mqtt://{USER}:{password}@127.0.0.1:{}/{topic}",
            broker.port(V311)
        );
        for args in [vec!["-u", USER, "-P", password], vec!["-L", url.as_str()]] {
            let out = run(broker
                .cmd("pub", V311)
                .args(["-t", &topic, "-m", "x", "-d"])
                .args(&args));
            out.assert_code(code);
            assert!(
                !out.stderr.contains(password),
                "{args:?}: password on stderr:\n{}",
                out.stderr
            );
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn anonymous_client_refused_exits_4() {
    let broker = password_broker(false);
    run(broker.cmd("pub", V311).args(["-t", "a", "-m", "x"])).assert_error(4, &[]);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn every_way_to_give_the_password() {
    let broker = password_broker(false);
    let topic = unique_topic() + "auth";
    let sub = subscriber(broker.cmd("sub", V5).args([
        "-t", &topic, "-u", USER, "-P", PASSWORD, "-q", "1", "-C", "3", "-W", "30",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    run(broker
        .cmd("pub", V311)
        .args(["-t", &topic, "-q", "1", "-m", "env", "-u", USER])
        .env("MQTT_PASSWORD", PASSWORD))
    .assert_ok(b"");
    run(broker.cmd("pub", V311).args([
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "file",
        "-u",
        USER,
        "--password-file",
        file.to_str().unwrap(),
    ]))
    .assert_ok(b"");
    let url = format!("mqtt://{USER}:{PASSWORD}@127.0.0.1:{}", broker.port(V311));
    run(crate::common::mqttcli().args(["pub", "-L", &url, "-t", &topic, "-q", "1", "-m", "url"]))
        .assert_ok(b"");
    sub.finish().assert_ok(b"env\nfile\nurl\n");
}

/// Other places a secret travels: a WebSocket header (`-d` prints the settings), a proxy's
/// password and a URL's password in a value too malformed to use. None reaches stderr.
#[test]
fn header_proxy_and_url_secrets_never_appear_on_stderr() {
    const SECRET: &str = "s3cr3t-token";
    let closed = crate::common::broker::free_port().to_string();
    let header = format!("Authorization: Bearer {SECRET}");
    // (arguments, environment, exit code)
    type Case = (Vec<String>, Vec<(&'static str, String)>, i32);
    let cases: Vec<Case> = vec![
        (
            // Closed port: the connection fails after the settings were logged.
            [
                "pub",
                "--ws",
                "--header",
                &header,
                "-h",
                "127.0.0.1",
                "-p",
                &closed,
                "-d",
            ]
            .map(String::from)
            .to_vec(),
            vec![],
            3,
        ),
        (
            [
                "pub",
                "--proxy",
                &format!("u:{SECRET}@proxy.test:x"),
                "-h",
                "broker.test",
            ]
            .map(String::from)
            .to_vec(),
            vec![],
            2,
        ),
        (
            ["pub", "-h", "broker.test"].map(String::from).to_vec(),
            vec![("HTTPS_PROXY", format!("u:{SECRET}@proxy.test:x"))],
            2,
        ),
        (
            [
                "pub",
                "-L",
                &format!("mqtt://u:{SECRET}/x@127.0.0.1:{closed}"),
            ]
            .map(String::from)
            .to_vec(),
            vec![],
            2,
        ),
    ];
    for (args, env, code) in cases {
        let mut cmd = crate::common::mqttcli();
        cmd.args(&args).args(["-t", "t", "-m", "x"]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        out.assert_code(code);
        assert!(
            !out.stderr.contains(SECRET) && !out.stderr.contains("s3cr3t"),
            "{args:?} {env:?}: secret on stderr:\n{}",
            out.stderr
        );
        assert!(!out.stderr.is_empty(), "{args:?}: no error at all");
    }
}
