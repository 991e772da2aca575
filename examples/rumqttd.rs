//! rumqttd 0.20 (the dev-dependency) as a process of its own, for the broker matrix
//! (tests/common/brokers.rs): in-process it could not be stopped, and a broker that outlives
//! its test lets one test's session or retained message leak into the next.
//!
//! `rumqttd V4_PORT V5_PORT` listens on 127.0.0.1 (MQTT 3.1.1 on the first port, 5 on the
//! second) and prints `ready` once both accept connections; it runs until killed. Exits 98 if a
//! port is taken, so that the caller can try other ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[path = "../tests/common/rumqttd_config.rs"]
mod rumqttd_config;

fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a port number"))
        .collect();
    let [v4, v5] = ports[..] else {
        eprintln!("usage: rumqttd V4_PORT V5_PORT");
        std::process::exit(2);
    };
    // rumqttd only logs a failed bind and serves nothing; checking first turns a taken port
    // into an exit the caller sees (a port taken in between is caught by its readiness check).
    for port in [v4, v5] {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("port {port}: address already in use");
            std::process::exit(98);
        }
    }
    let config = rumqttd_config::config(v4, v5);
    let mut broker = rumqttd::Broker::new(config);
    // start() blocks for ever: the process ends when it is killed.
    let serving = std::thread::spawn(move || {
        if let Err(e) = broker.start() {
            eprintln!("rumqttd: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepts = |port: u16| {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    };
    while !(accepts(v4) && accepts(v5)) {
        if Instant::now() > deadline || serving.is_finished() {
            eprintln!("rumqttd is not accepting on ports {v4} and {v5}");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("ready");
    let _ = serving.join();
}
