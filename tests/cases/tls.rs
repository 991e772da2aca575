//! TLS against Mosquitto listeners with certificates made at test time: round trips, what each
//! failed handshake says (exit 7), mutual TLS, the OS trust store, mix-ups between plain and TLS
//! ports, and unusable PEM files (exit 2).

use std::process::Command;

use crate::common::broker::free_port;
use crate::common::certs::{self, Ca, Leaf, Pki, EXPIRED_AT, VALID_FROM};
use crate::common::{connect, mqttcli, run, subscriber, unique_topic, Broker, Out, Proto, Setup};
use Proto::{V311, V5};

/// A Mosquitto with its plain listener (`broker.port(..)`) and TLS listeners, and the
/// certificates they use. Fields drop in order: the broker goes before the files it reads.
struct TlsBroker {
    broker: Broker,
    ca: Ca,
    pki: Pki,
}

/// The TLS versions a broker offers.
#[derive(Clone, Copy, PartialEq)]
enum Offers {
    /// Mosquitto's default.
    Tls12And13,
    /// Capped by OpenSSL's configuration (Mosquitto has no option for a maximum).
    Tls12Only,
}

/// An OpenSSL configuration that caps every TLS context of the process at TLS 1.2.
const OPENSSL_CONF_MAX_TLS12: &str = "\
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
";

impl TlsBroker {
    /// One TLS listener (`tls_port()`) with a certificate for localhost and 127.0.0.1 signed by
    /// `ca`.
    fn start() -> TlsBroker {
        TlsBroker::start_with(Offers::Tls12And13, |_, server| vec![server.mosquitto_tls()])
    }

    /// Listeners made by `listeners(ca, server)`, where `server` is the certificate above.
    fn start_with(offers: Offers, listeners: impl FnOnce(&Ca, &Leaf) -> Vec<String>) -> TlsBroker {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let server = ca.server("server", &["localhost", "127.0.0.1"]);
        let listeners = listeners(&ca, &server);
        let mut env = Vec::new();
        if offers == Offers::Tls12Only {
            let conf = pki.write("openssl.cnf", OPENSSL_CONF_MAX_TLS12);
            env.push(("OPENSSL_CONF", conf.display().to_string()));
        }
        let broker = Broker::mosquitto(&Setup {
            anonymous: true,
            listeners: &listeners,
            env: &env,
            ..Setup::default()
        });
        TlsBroker { broker, ca, pki }
    }

    fn tls_port(&self) -> u16 {
        self.broker.listener_port(0)
    }

    /// `SUB -h localhost -p TLS_PORT -V VERSION --cafile CA`.
    fn cmd(&self, subcommand: &str, proto: Proto) -> Command {
        let mut cmd = connect(subcommand, "localhost", self.tls_port(), proto);
        cmd.arg("--cafile").arg(&self.ca.cert);
        cmd
    }
}

fn handshake_failed(host_port: &str, why: &str) -> String {
    format!("mqttcli: error: TLS handshake with {host_port} failed: {why}")
}

const NOT_TRUSTED: &str =
    "the broker's certificate is not signed by a trusted CA: pass the broker's CA with --cafile FILE";

/// Publish `msg` with `publisher` (topic and message added) and check that a subscriber on the
/// broker's plain port got it: the publisher's connection was accepted.
#[track_caller]
fn publish_reaches_plain_sub(broker: &Broker, mut publisher: Command, msg: &str) {
    let topic = unique_topic() + "tls";
    let sub = subscriber(
        broker
            .cmd("sub", V311)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(publisher.args(["-t", &topic, "-q", "1", "-m", msg])).assert_ok(b"");
    sub.finish().assert_ok(format!("{msg}\n").as_bytes());
}

/// Run `make("pub")` as a publisher and `make("sub")` as a subscriber (bounded by -W).
fn pub_and_sub(make: impl Fn(&str) -> Command) -> [Out; 2] {
    let publisher = run(make("pub").args(["-t", "t", "-m", "x"]));
    let subscriber = run(make("sub").args(["-t", "t", "-W", "30"]));
    [publisher, subscriber]
}

fn round_trip_with_the_brokers_ca(proto: Proto) {
    let tls = TlsBroker::start();
    let topic = unique_topic() + "rt";
    let sub = subscriber(
        tls.cmd("sub", proto)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    run(tls
        .cmd("pub", proto)
        .args(["-t", &topic, "-q", "1", "-m", "over TLS"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"over TLS\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn round_trip_with_the_brokers_ca_v311() {
    round_trip_with_the_brokers_ca(V311);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn round_trip_with_the_brokers_ca_v5() {
    round_trip_with_the_brokers_ca(V5);
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mqtts_url_with_cafile() {
    let tls = TlsBroker::start();
    let url = format!("mqtts://localhost:{}", tls.tls_port());
    let topic = unique_topic() + "url";
    let sub = subscriber(
        mqttcli()
            .args(["sub", "-L", &url, "--cafile"])
            .arg(&tls.ca.cert)
            .args(["-t", &topic, "-q", "1", "-C", "1", "-W", "30"]),
    );
    // The URL's path is the topic for mqtts:// as for mqtt://.
    run(mqttcli()
        .args(["pub", "-L", &format!("{url}/{topic}"), "--cafile"])
        .arg(&tls.ca.cert)
        .args(["-q", "1", "-m", "via mqtts://"]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"via mqtts://\n");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_version_and_alpn_options_connect() {
    let tls = TlsBroker::start();
    // Mosquitto 2.0.11 offers TLS 1.2 and 1.3 and ignores ALPN, so each of these connects.
    for args in [
        &["--tls-version", "1.2"][..],
        &["--tls-version", "1.3"],
        &["--alpn", "mqtt", "--alpn", "x-amzn-mqtt-ca"],
    ] {
        publish_reaches_plain_sub(
            &tls.broker,
            {
                let mut cmd = tls.cmd("pub", V311);
                cmd.args(args);
                cmd
            },
            &format!("with {}", args.join(" ")),
        );
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_version_is_a_minimum() {
    let tls = TlsBroker::start_with(Offers::Tls12Only, |_, s| vec![s.mosquitto_tls()]);
    for args in [&[][..], &["--tls-version", "1.2"]] {
        let mut cmd = tls.cmd("pub", V311);
        cmd.args(args);
        publish_reaches_plain_sub(&tls.broker, cmd, &format!("TLS 1.2 with {args:?}"));
    }
    // No wording is specified for this one: one line, naming the handshake.
    let prefix = handshake_failed(&format!("localhost:{}", tls.tls_port()), "");
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| {
            let mut cmd = tls.cmd(subcommand, proto);
            cmd.args(["--tls-version", "1.3"]);
            cmd
        }) {
            assert_one_line_starting(&out, 7, &prefix);
        }
    }
}

/// Failed with `code`, nothing on stdout, stderr one line starting with `prefix`.
#[track_caller]
fn assert_one_line_starting(out: &Out, code: i32, prefix: &str) {
    out.assert_code(code).assert_stdout(b"");
    assert!(
        out.stderr.starts_with(prefix) && out.stderr.lines().count() == 1,
        "expected one line starting {prefix:?}, got {:?}",
        out.stderr
    );
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn wrong_ca_exits_7() {
    let tls = TlsBroker::start();
    let other = tls.pki.ca("other-ca");
    let expected = handshake_failed(&format!("localhost:{}", tls.tls_port()), NOT_TRUSTED);
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| {
            let mut cmd = connect(subcommand, "localhost", tls.tls_port(), proto);
            cmd.arg("--cafile").arg(&other.cert);
            cmd
        }) {
            out.assert_exact_error(7, &expected);
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn expired_server_certificate_exits_7() {
    let tls = TlsBroker::start_with(Offers::Tls12And13, |ca, _| {
        vec![ca.expired_server("expired").mosquitto_tls()]
    });
    let expected = handshake_failed(
        &format!("localhost:{}", tls.tls_port()),
        &format!(
            "the broker's certificate expired at {EXPIRED_AT}: renew it on the broker, \
             or check this machine's clock"
        ),
    );
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| tls.cmd(subcommand, proto)) {
            out.assert_exact_error(7, &expected);
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn not_yet_valid_server_certificate_exits_7() {
    let tls = TlsBroker::start_with(Offers::Tls12And13, |ca, _| {
        vec![ca.not_yet_valid_server("future").mosquitto_tls()]
    });
    let expected = handshake_failed(
        &format!("localhost:{}", tls.tls_port()),
        &format!(
            "the broker's certificate is not valid before {VALID_FROM}: check this machine's clock"
        ),
    );
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| tls.cmd(subcommand, proto)) {
            out.assert_exact_error(7, &expected);
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn name_mismatch_exits_7_and_tls_server_name_fixes_it() {
    let tls = TlsBroker::start_with(Offers::Tls12And13, |ca, _| {
        vec![ca.server("named", &["broker.test"]).mosquitto_tls()]
    });
    let port = tls.tls_port().to_string();
    let at_ip = |subcommand: &str, proto: Proto| {
        let mut cmd = crate::common::at(subcommand, tls.tls_port(), proto);
        cmd.arg("--cafile").arg(&tls.ca.cert);
        cmd
    };
    let expected = handshake_failed(
        &format!("127.0.0.1:{port}"),
        "the broker's certificate is not valid for '127.0.0.1' (it covers: broker.test): \
         connect with one of those names, or verify another with --tls-server-name NAME",
    );
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| at_ip(subcommand, proto)) {
            out.assert_exact_error(7, &expected);
        }
    }

    let topic = unique_topic() + "named";
    let sub = subscriber(at_ip("sub", V5).args([
        "--tls-server-name",
        "broker.test",
        "-t",
        &topic,
        "-q",
        "1",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    run(at_ip("pub", V311).args([
        "--tls-server-name",
        "broker.test",
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "verified as broker.test",
    ]))
    .assert_ok(b"");
    sub.finish().assert_ok(b"verified as broker.test\n");
}

const INSECURE_WARNING: &str = "mqttcli: warning: --insecure: the broker's certificate is not \
     verified, so anyone on the network path can read and change this connection";

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn insecure_connects_to_an_unknown_ca_with_a_warning() {
    let tls = TlsBroker::start();
    let topic = unique_topic() + "insecure";
    let sub = subscriber(connect("sub", "localhost", tls.tls_port(), V5).args([
        "--insecure",
        "-t",
        &topic,
        "-q",
        "1",
        "-C",
        "1",
        "-W",
        "30",
    ]));
    let out = run(connect("pub", "localhost", tls.tls_port(), V311).args([
        "--insecure",
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "unverified",
    ]));
    out.assert_code(0).assert_stdout(b"");
    assert_eq!(
        out.stderr,
        format!("{INSECURE_WARNING}\n"),
        "pub --insecure: stderr should be the warning line alone"
    );
    let sub = sub.finish();
    sub.assert_ok(b"unverified\n");
    assert!(
        sub.stderr.lines().any(|l| l == INSECURE_WARNING),
        "sub --insecure: no warning line on stderr:\n{}",
        sub.stderr
    );
}

/// A broker whose listener 0 requires a client certificate signed by its CA.
fn mtls_broker(offers: Offers) -> TlsBroker {
    TlsBroker::start_with(offers, |ca, server| vec![server.mosquitto_mtls(ca)])
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mutual_tls_with_a_pkcs8_key() {
    let tls = mtls_broker(Offers::Tls12And13);
    let client = tls.ca.client("client");
    let mut cmd = tls.cmd("pub", V5);
    cmd.arg("--cert")
        .arg(&client.cert)
        .arg("--key")
        .arg(&client.key);
    publish_reaches_plain_sub(&tls.broker, cmd, "client key in PKCS#8");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(no_openssl, ignore = "needs openssl")]
fn mutual_tls_with_a_sec1_key() {
    let openssl = certs::openssl();
    let tls = mtls_broker(Offers::Tls12And13);
    let client = tls.ca.client("client");
    let sec1 = certs::traditional_key(&openssl, &client.key);
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{sec1}");
    let key = tls.pki.write("client-sec1.key", sec1);
    let mut cmd = tls.cmd("pub", V311);
    cmd.arg("--cert").arg(&client.cert).arg("--key").arg(key);
    publish_reaches_plain_sub(&tls.broker, cmd, "client key in SEC1");
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
#[cfg_attr(no_openssl, ignore = "needs openssl")]
fn mutual_tls_with_rsa_keys_in_pkcs1_and_pkcs8() {
    let openssl = certs::openssl();
    let tls = mtls_broker(Offers::Tls12And13);
    let client = tls
        .ca
        .client_rsa("client-rsa", &certs::rsa_key_pkcs8(&openssl));
    let pkcs1 = certs::traditional_key(&openssl, &client.key);
    assert!(
        pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{pkcs1}"
    );
    let pkcs1 = tls.pki.write("client-rsa-pkcs1.key", pkcs1);
    for (key, format) in [(&client.key, "RSA PKCS#8"), (&pkcs1, "RSA PKCS#1")] {
        let mut cmd = tls.cmd("pub", V311);
        cmd.arg("--cert").arg(&client.cert).arg("--key").arg(key);
        publish_reaches_plain_sub(&tls.broker, cmd, &format!("client key in {format}"));
    }
}

// TLS 1.3 and 1.2 tell the client in different ways (an alert after the client's Finished, or
// a handshake_failure alert during the handshake), so both are tried.

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mutual_tls_without_a_client_certificate_exits_7() {
    for offers in [Offers::Tls12And13, Offers::Tls12Only] {
        let tls = mtls_broker(offers);
        // TLS 1.2 has no "certificate required" alert, only handshake_failure, which a
        // cipher or version mismatch also sends: the message can only say "may".
        let why = match offers {
            Offers::Tls12And13 => {
                "the broker asks for a client certificate: pass --cert FILE and --key FILE"
            }
            Offers::Tls12Only => {
                "the broker ended the handshake: it may want a client certificate (pass --cert FILE and --key FILE), or share no cipher or TLS version with mqttcli (see --tls-version)"
            }
        };
        let expected = handshake_failed(&format!("localhost:{}", tls.tls_port()), why);
        for proto in [V311, V5] {
            for out in pub_and_sub(|subcommand| tls.cmd(subcommand, proto)) {
                out.assert_exact_error(7, &expected);
            }
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn mutual_tls_with_a_client_certificate_from_an_unknown_ca_exits_7() {
    for offers in [Offers::Tls12And13, Offers::Tls12Only] {
        let tls = mtls_broker(offers);
        let stranger = tls.pki.ca("stranger-ca").client("stranger");
        // Not in the brief: this is the binary's own wording, pinned.
        let expected = handshake_failed(
            &format!("localhost:{}", tls.tls_port()),
            "the broker rejected the client certificate (it does not trust the certificate's CA): check --cert and --key, and \
             that the broker trusts their CA",
        );
        for proto in [V311, V5] {
            for out in pub_and_sub(|subcommand| {
                let mut cmd = tls.cmd(subcommand, proto);
                cmd.arg("--cert")
                    .arg(&stranger.cert)
                    .arg("--key")
                    .arg(&stranger.key);
                cmd
            }) {
                out.assert_exact_error(7, &expected);
            }
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_options_against_a_plain_port_exit_7() {
    let tls = TlsBroker::start();
    let plain = tls.broker.port(V311);
    let expected = handshake_failed(
        &format!("localhost:{plain}"),
        &format!(
            "the broker did not answer with TLS: is {plain} a plain MQTT port? Drop the TLS \
             options, or use the broker's TLS port (usually 8883)"
        ),
    );
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| {
            let mut cmd = connect(subcommand, "localhost", plain, proto);
            cmd.arg("--cafile").arg(&tls.ca.cert);
            cmd
        }) {
            out.assert_exact_error(7, &expected);
        }
    }
    run(connect("pub", "localhost", plain, V311).args(["--tls", "-t", "t", "-m", "x"]))
        .assert_exact_error(7, &expected);
    // --insecure warns first, then fails the same way.
    let out =
        run(connect("sub", "localhost", plain, V311).args(["--insecure", "-t", "t", "-W", "30"]));
    out.assert_code(7).assert_stdout(b"");
    assert_eq!(out.stderr, format!("{INSECURE_WARNING}\n{expected}\n"));
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn plain_mqtt_against_a_tls_port_exits_3() {
    let tls = TlsBroker::start();
    let port = tls.tls_port();
    // Under MQTT 5 the likelier cause, a broker that speaks only 3.1.1, is named first.
    let v5_hint = "if the broker speaks only MQTT 3.1.1, use -V 311; ";
    for (proto, hint) in [(V311, ""), (V5, v5_hint)] {
        let expected = format!(
            "mqttcli: error: localhost:{port} closed the connection before CONNACK: {hint}if it \
             is a TLS port, add --tls or --cafile FILE"
        );
        for out in pub_and_sub(|subcommand| connect(subcommand, "localhost", port, proto)) {
            out.assert_exact_error(3, &expected);
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn os_trust_store_honours_ssl_cert_file() {
    let tls = TlsBroker::start();
    let port = tls.tls_port();
    let mut cmd = connect("pub", "localhost", port, V311);
    cmd.arg("--tls").env("SSL_CERT_FILE", &tls.ca.cert);
    publish_reaches_plain_sub(&tls.broker, cmd, "trusted through SSL_CERT_FILE");

    let mut cmd = connect("pub", "localhost", port, V5);
    cmd.arg("--tls").env("SSL_CERT_FILE", &tls.ca.cert);
    publish_reaches_plain_sub(&tls.broker, cmd, "trusted through SSL_CERT_FILE (v5)");

    // An mqtts:// URL alone means TLS with the OS trust store too.
    let mut cmd = mqttcli();
    cmd.args(["pub", "-L", &format!("mqtts://localhost:{port}")])
        .env("SSL_CERT_FILE", &tls.ca.cert);
    publish_reaches_plain_sub(
        &tls.broker,
        cmd,
        "mqtts:// URL, trusted through SSL_CERT_FILE",
    );

    // Without it, the machine's own store does not know the test CA.
    let expected = handshake_failed(&format!("localhost:{port}"), NOT_TRUSTED);
    for proto in [V311, V5] {
        for out in pub_and_sub(|subcommand| {
            let mut cmd = connect(subcommand, "localhost", port, proto);
            cmd.arg("--tls");
            cmd
        }) {
            out.assert_exact_error(7, &expected);
        }
    }
}

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn each_tls_option_turns_tls_on() {
    let tls = TlsBroker::start();
    let client = tls.ca.client("client");
    let (cert, key) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    // Without TLS these would fail against the TLS port (exit 3); the CA comes from the
    // OS trust store, i.e. SSL_CERT_FILE.
    for args in [
        &["--tls-server-name", "localhost"][..],
        &["--alpn", "mqtt"],
        &["--tls-version", "1.2"],
        &["--cert", cert, "--key", key],
    ] {
        let mut cmd = connect("pub", "localhost", tls.tls_port(), V311);
        cmd.args(args).env("SSL_CERT_FILE", &tls.ca.cert);
        publish_reaches_plain_sub(&tls.broker, cmd, &format!("TLS on by {}", args[0]));
    }
}

// PEM files that cannot be used: exit 2 before any connection (nothing listens on the port).

/// `pub -h localhost -p FREE_PORT -t t -m x` plus `args`.
fn pub_without_broker(args: &[&std::ffi::OsStr]) -> Out {
    let port = free_port().to_string();
    run(mqttcli()
        .args(["pub", "-h", "localhost", "-p", &port, "-t", "t", "-m", "x"])
        .args(args))
}

fn os(s: &impl AsRef<std::ffi::OsStr>) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn cafile_that_does_not_exist_exits_2() {
    let pki = Pki::new();
    let missing = pki.dir().join("missing.pem");
    pub_without_broker(&[os(&"--cafile"), os(&missing)]).assert_exact_error(
        2,
        &format!(
            "mqttcli: error: cannot read --cafile {}: No such file or directory (os error 2)",
            missing.display()
        ),
    );
}

#[test]
fn cafile_holding_a_key_exits_2() {
    let pki = Pki::new();
    let leaf = pki.ca("ca").client("client");
    pub_without_broker(&[os(&"--cafile"), os(&leaf.key)]).assert_exact_error(
        2,
        &format!(
            "mqttcli: error: --cafile {} holds no PEM certificate (found: a private key): pass \
             the CA's certificate",
            leaf.key.display()
        ),
    );
}

#[test]
fn cafile_that_is_not_pem_exits_2() {
    let pki = Pki::new();
    let hello = pki.write("hello.txt", "hello\n");
    pub_without_broker(&[os(&"--cafile"), os(&hello)]).assert_exact_error(
        2,
        &format!(
            "mqttcli: error: --cafile {} holds no PEM certificate (found: nothing PEM-encoded): \
             pass the CA's certificate",
            hello.display()
        ),
    );
}

#[test]
fn key_holding_a_certificate_exits_2() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let leaf = ca.client("client");
    pub_without_broker(&[
        os(&"--cafile"),
        os(&ca.cert),
        os(&"--cert"),
        os(&leaf.cert),
        os(&"--key"),
        os(&leaf.cert),
    ])
    .assert_exact_error(
        2,
        &format!(
            "mqttcli: error: --key {} holds no private key (found: a certificate): pass the \
             client's key (PKCS#8, PKCS#1 or SEC1 PEM)",
            leaf.cert.display()
        ),
    );
}

#[test]
fn cert_and_key_go_together() {
    let pki = Pki::new();
    let leaf = pki.ca("ca").client("client");
    for args in [
        [os(&"--cert"), os(&leaf.cert)],
        [os(&"--key"), os(&leaf.key)],
    ] {
        let out = pub_without_broker(&args);
        out.assert_code(2).assert_stdout(b"");
        assert!(
            out.stderr.lines().count() == 1 && out.stderr.contains("--cert and --key go together"),
            "{args:?}: stderr should be one line saying '--cert and --key go together', got:\n{}",
            out.stderr
        );
    }
}

/// What a TLS server sees of a client's hello: the SNI, and the ALPN protocol agreed on.
#[derive(Debug, Default, PartialEq)]
struct Hello {
    sni: Option<String>,
    alpn: Option<String>,
}

/// The SNI a client sends, as a TLS server that records it sees it: a rustls server on a free
/// port with a certificate for `names`, handshaking with one client and then closing (the
/// client then finds no MQTT there, which does not matter here).
fn sni_seen(ca: &Ca, names: &[&str], client: impl FnOnce(u16) -> Out) -> (Option<String>, Out) {
    let (hello, out) = hello_seen(ca, names, &[], client);
    (hello.sni, out)
}

/// As `sni_seen`, with a server that offers the ALPN protocols `alpn`.
fn hello_seen(
    ca: &Ca,
    names: &[&str],
    alpn: &[&str],
    client: impl FnOnce(u16) -> Out,
) -> (Hello, Out) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let leaf = ca.server("sni", names);
    let chain = vec![CertificateDer::from_pem_file(&leaf.cert).expect("server certificate")];
    let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let server = crate::common::fake::FakeBroker::bind();
    let port = server.port();
    let server = server.serve_one(move |conn| {
        let tcp = conn.stream();
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).expect("tls");
        while conn.is_handshaking() {
            if conn.complete_io(tcp).is_err() {
                break;
            }
        }
        Ok(Hello {
            sni: conn.server_name().map(str::to_string),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    });
    let out = client(port);
    (server.result(&out), out)
}

/// `--alpn` is offered in the handshake: a server that speaks only `x-amzn-mqtt-ca` (as AWS
/// IoT on 443) agrees on it. Mosquitto ignores ALPN, so a server of the test's own checks it.
#[test]
fn alpn_protocols_are_offered() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (hello, out) = hello_seen(&ca, &["localhost"], &["x-amzn-mqtt-ca"], |port| {
        run(mqttcli()
            .args([
                "pub",
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "-t",
                "t",
                "-m",
                "x",
            ])
            .arg("--cafile")
            .arg(&ca.cert)
            .args(["--alpn", "mqtt", "--alpn", "x-amzn-mqtt-ca"]))
    });
    assert_eq!(
        hello,
        Hello {
            sni: Some("localhost".into()),
            alpn: Some("x-amzn-mqtt-ca".into())
        },
        "{}",
        out.dump()
    );
    out.assert_code(3);
}

/// `--tls-server-name` is sent as SNI, not only verified: a broker behind a name-routing TLS
/// front end (or one serving several names) sees the name asked for. Without it, the SNI is
/// `-h`'s name.
#[test]
fn tls_server_name_is_sent_as_sni() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let dial = |port: u16, extra: &[&str]| {
        run(mqttcli()
            .args([
                "pub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "t",
                "-m",
                "x",
            ])
            .arg("--cafile")
            .arg(&ca.cert)
            .args(extra))
    };
    let (sni, out) = sni_seen(&ca, &["broker.test"], |port| {
        dial(port, &["--tls-server-name", "broker.test"])
    });
    assert_eq!(sni.as_deref(), Some("broker.test"), "{}", out.dump());
    // The handshake succeeded (the name was verified), then the server closed: no CONNACK.
    out.assert_code(3);
    assert!(
        out.stderr.contains("closed the connection before CONNACK"),
        "{}",
        out.dump()
    );

    let (sni, out) = sni_seen(&ca, &["localhost"], |port| {
        run(mqttcli()
            .args([
                "pub",
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "-t",
                "t",
                "-m",
                "x",
            ])
            .arg("--cafile")
            .arg(&ca.cert))
    });
    assert_eq!(sni.as_deref(), Some("localhost"), "{}", out.dump());
    out.assert_code(3);

    // Nothing listening: the same words as without --tls-server-name, not a proxy's.
    let closed = free_port();
    dial(closed, &["--tls-server-name", "broker.test"]).assert_exact_error(
        3,
        &format!(
            "mqttcli: error: cannot connect to 127.0.0.1:{closed}: connection refused: is the broker running, and is -p right?"
        ),
    );
}
