//! `--tls-server-name` in full: the name is sent as SNI as well as verified. rumqttc takes both
//! from the host it dials and has no way to set another, so for such a connection mqttcli hands
//! rumqttc the server name as the host, and itself as an HTTP CONNECT proxy on 127.0.0.1: this
//! relay accepts the tunnel rumqttc asks for (to the name) and connects it to the address given
//! with `-h` instead. One relay serves every reconnect of the process.

use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the relay saw go wrong on its way to the broker, for the error message: rumqttc only
/// learns that "the proxy" answered 502.
#[derive(Debug, Default)]
pub struct Relay {
    pub port: u16,
    failure: Mutex<Option<io::Error>>,
}

impl Relay {
    /// The last failure to reach the broker, once.
    pub fn take_failure(&self) -> Option<io::Error> {
        self.failure.lock().ok()?.take()
    }
}

/// Starts the relay to `host:port` on a free loopback port. Must be called on the runtime.
pub fn start(host: String, port: u16) -> io::Result<Arc<Relay>> {
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let relay = Arc::new(Relay {
        port: listener.local_addr()?.port(),
        failure: Mutex::new(None),
    });
    let shared = relay.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (host, shared) = (host.clone(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = tunnel(client, &host, port).await {
                    if let Ok(mut f) = shared.failure.lock() {
                        *f = Some(e);
                    }
                }
            });
        }
    });
    Ok(relay)
}

/// One tunnel: read rumqttc's CONNECT request, connect to the broker, answer, relay bytes.
async fn tunnel(mut client: TcpStream, host: &str, port: u16) -> io::Result<()> {
    // The request head is a few dozen bytes; anything else would be a bug on our side.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let mut broker = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return Err(e);
        }
    };
    broker.set_nodelay(true)?;
    client.set_nodelay(true)?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    // A tunnel ends when either side closes; what ends it is not a failure to report.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
    Ok(())
}
