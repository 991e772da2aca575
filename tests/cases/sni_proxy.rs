//! `--tls-server-name` behind a proxy: the name is sent as SNI as well as verified, as without
//! a proxy. The HTTP test proxy records the first bytes through its tunnel, the TLS
//! ClientHello, where the SNI is in clear.

use crate::common::certs::Pki;
use crate::common::proxy::Proxy;
use crate::common::socks::{Socks, Target};
use crate::common::transports::one_tunnel_to;
use crate::common::{connect, run, subscriber, unique_topic, Broker, Proto};

#[test]
#[cfg_attr(no_mosquitto, ignore = "needs Mosquitto (apt install mosquitto)")]
fn tls_server_name_behind_a_proxy_is_sent_as_sni() {
    let pki = Pki::new();
    // The certificate names only broker.test: dialled as 127.0.0.1, only the server name
    // verifies.
    let server = pki.ca("ca").server("server", &["broker.test"]);
    let listeners = [server.mosquitto_tls()];
    let broker = Broker::anonymous_with_listeners(&listeners);
    let port = broker.listener_port(0);
    let ca = pki.dir().join("ca.pem");
    let http = Proxy::start();
    let socks = Socks::start();
    for proxy in [http.url(), socks.url("socks5h", "")] {
        let topic = unique_topic() + "sni";
        let sub = subscriber(
            broker
                .cmd("sub", Proto::V5)
                .args(["-t", &topic, "-C", "1", "-W", "30"]),
        );
        run(connect("pub", "127.0.0.1", port, Proto::V5)
            .args([
                "--proxy",
                &proxy,
                "--tls-server-name",
                "broker.test",
                "--cafile",
            ])
            .arg(&ca)
            .args(["-t", &topic, "-m", "named"]))
        .assert_ok(b"");
        sub.finish().assert_ok(b"named\n");
    }
    // Each proxy was asked for the address given with -h…
    let tunnels = [one_tunnel_to(&http, &format!("127.0.0.1:{port}"))];
    let requests = socks.requests();
    assert_eq!(
        requests.last().and_then(|r| r.target.clone()),
        Some(Target::Addr(([127, 0, 0, 1], port).into())),
        "{requests:#?}"
    );
    // …and the ClientHello through the tunnel named broker.test.
    let hello = &tunnels[0].inner;
    assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake: {hello:?}");
    assert!(
        hello
            .windows(b"broker.test".len())
            .any(|w| w == b"broker.test"),
        "no SNI broker.test in the ClientHello: {hello:?}"
    );
}
