//! The conversion's precedence and defaults, without a process environment.
use super::*;
use crate::cli::{Cli, Command};

fn conn(args: &[&str]) -> ConnArgs {
    let argv = ["mqttcli", "sub", "-t", "x"]
        .iter()
        .chain(args.iter())
        .copied();
    match Cli::parse_from(argv).unwrap().command {
        Command::Sub(s) => s.conn,
        _ => unreachable!(),
    }
}

fn resolve_with(args: &[&str], password_env: Option<&str>) -> Result<Settings> {
    resolve_for(args, password_env, Purpose::Subscribe { count: None })
}

fn resolve_for(args: &[&str], password_env: Option<&str>, purpose: Purpose) -> Result<Settings> {
    let env = Environment {
        password: password_env.map(str::to_string),
        ..Default::default()
    };
    resolve(&conn(args), &env, purpose).map(|r| r.settings)
}

#[test]
fn the_purpose_settles_reconnects_sessions_and_the_window() {
    let publish = |streaming| Purpose::Publish {
        qos: Qos::ExactlyOnce,
        streaming,
        max_inflight: None,
        topic_aliases: false,
    };
    assert!(
        !resolve_for(&[], None, publish(false))
            .unwrap()
            .reconnect
            .enabled
    );
    let stream = resolve_for(&[], None, publish(true)).unwrap();
    assert!(stream.reconnect.enabled);
    assert_eq!(stream.inflight, Some(QOS2_INFLIGHT_V311));
    // -M wins over the 3.1.1 QoS 2 default, and applies under MQTT 5 too.
    for v in ["311", "5"] {
        let windowed = Purpose::Publish {
            qos: Qos::ExactlyOnce,
            streaming: true,
            max_inflight: Some(7),
            topic_aliases: false,
        };
        let s = resolve_for(&["-V", v], None, windowed).unwrap();
        assert_eq!(s.inflight, Some(7), "-V {v}");
    }
    assert_eq!(
        resolve_for(&["-V", "5"], None, publish(true))
            .unwrap()
            .inflight,
        None
    );
    assert!(
        !resolve_for(
            &["--no-reconnect"],
            None,
            Purpose::Subscribe { count: None }
        )
        .unwrap()
        .reconnect
        .enabled
    );
    assert_eq!(
        resolve_for(&[], None, Purpose::Request).unwrap().protocol,
        Protocol::V5
    );
    let unsub = resolve_for(&["-i", "me", "-V", "5"], None, Purpose::Unsubscribe).unwrap();
    assert!(!unsub.clean_session && unsub.manual_acks && !unsub.reconnect.enabled);
    assert_eq!(unsub.session_expiry, Some(u32::MAX));
    let e = resolve_for(&[], None, Purpose::Unsubscribe).unwrap_err();
    assert!(e.to_string().contains("add -i ID"), "{e}");
}

fn err(args: &[&str]) -> String {
    let e = resolve_with(args, None).unwrap_err();
    assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
    e.to_string()
}

#[test]
fn defaults() {
    let s = resolve_with(&[], None).unwrap();
    assert_eq!((s.host.as_str(), s.port), ("localhost", 1883));
    assert!(s.client_id.starts_with("mqttcli-") && s.client_id.len() == 24);
    assert!(s.clean_session);
    assert_eq!(s.keepalive, Duration::from_secs(60));
    assert_eq!(s.protocol, Protocol::V311);
}

#[test]
fn random_ids_differ_and_take_a_prefix() {
    let a = resolve_with(&["-I", "probe-"], None).unwrap().client_id;
    let b = resolve_with(&["-I", "probe-"], None).unwrap().client_id;
    assert!(a.starts_with("probe-") && a != b);
}

#[test]
fn flags_beat_the_url_and_the_url_beats_env() {
    let env = Environment {
        password: Some("envpass".into()),
        ..Default::default()
    };
    let args = conn(&["-L", "mqtt://u:urlpass@h:1884/t", "-p", "1999"]);
    let Resolved {
        settings: s,
        url_topic,
        ..
    } = resolve(&args, &env, Purpose::Subscribe { count: None }).unwrap();
    assert_eq!((s.host.as_str(), s.port), ("h", 1999));
    assert_eq!(s.password.unwrap().expose(), "urlpass");
    assert_eq!(url_topic.as_deref(), Some("t"));
    let s = resolve_with(&["-u", "u"], Some("envpass")).unwrap();
    assert_eq!(s.password.unwrap().expose(), "envpass");
    let s = resolve_with(&["-u", "u", "-P", "flag"], Some("envpass")).unwrap();
    assert_eq!(s.password.unwrap().expose(), "flag");
}

#[test]
fn password_file_drops_one_newline() {
    let dir = std::env::temp_dir().join(format!("mqttcli-pw-{}", std::process::id()));
    std::fs::write(&dir, "s3cret\n").unwrap();
    let s = resolve_with(&["-u", "u", "--password-file", dir.to_str().unwrap()], None).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(s.password.unwrap().expose(), "s3cret");
    assert!(err(&["-u", "u", "--password-file", "/nonexistent/pw"])
        .contains("cannot read the password file"));
}

#[test]
fn bad_combinations_are_usage_errors() {
    assert!(err(&["-c"]).contains("add -i ID"));
    assert!(err(&["-P", "x"]).contains("add -u USER"));
    assert!(err(&["-V", "5", "-k", "2"]).contains("use -k 5 or more"));
    assert!(err(&["-x", "10"]).contains("add -V 5"));
    assert!(err(&["-p", "0"]).contains("port 0"));
    assert!(err(&["-i", ""]).contains("empty"));
}

#[test]
fn transport_defaults_follow_mosquitto_and_emqx() {
    let port = |args: &[&str]| resolve_with(args, None).unwrap().port;
    assert_eq!(port(&[]), 1883);
    assert_eq!(port(&["--tls"]), 8883);
    assert_eq!(port(&["--cafile", "ca.pem"]), 8883);
    assert_eq!(port(&["-L", "mqtts://h"]), 8883);
    assert_eq!(port(&["--ws"]), 8083);
    assert_eq!(port(&["--ws", "--insecure"]), 8084);
    assert_eq!(port(&["-L", "wss://h/x"]), 8084);
    assert!(resolve_with(&["-p", "8883"], None).unwrap().tls.is_some());
    assert!(resolve_with(&["-L", "mqtt://h:8883"], None)
        .unwrap()
        .tls
        .is_none());
    let s = resolve_with(&["-L", "wss://h:9001/custom"], None).unwrap();
    assert_eq!(s.websocket.unwrap().path, "/custom");
    assert_eq!(
        resolve_with(&["--ws"], None)
            .unwrap()
            .websocket
            .unwrap()
            .path,
        "/mqtt"
    );
}

#[test]
fn tls_and_ws_option_errors() {
    assert!(err(&["--cert", "c.pem"]).contains("--cert and --key go together"));
    assert!(err(&["--key", "k.pem"]).contains("--cert and --key go together"));
    assert!(err(&["--ws-path", "/x"]).contains("add --ws"));
}

#[test]
fn persistent_v5_sessions_do_not_expire_by_default() {
    let s = resolve_with(&["-V", "5", "-c", "-i", "me"], None).unwrap();
    assert_eq!(s.session_expiry, Some(u32::MAX));
    assert!(!s.clean_session);
}

#[test]
fn debug_output_hides_the_password() {
    let s = resolve_with(&["-u", "u", "-P", "hunter2"], None).unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
}
