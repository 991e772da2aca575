//! A local relay for the connections rumqttc cannot make by itself. rumqttc dials a host over
//! TCP, directly or through an HTTP CONNECT proxy, and nothing else; so for these connections
//! mqttcli hands rumqttc itself as an HTTP CONNECT proxy on 127.0.0.1. This relay accepts the
//! tunnel rumqttc asks for, ignores the target named in it and reaches the broker its own way:
//! - `--tls-server-name`: rumqttc dials the server name (so it is sent as SNI as well as
//!   verified: rumqttc takes both from the host it dials), the relay connects to `-h`;
//! - a SOCKS5 proxy (socks.rs), which rumqttc does not speak; an HTTP proxy (http.rs) when
//!   one of the others goes through it;
//! - `-V 31`: the relay rewrites the CONNECT into MQTT 3.1's (mqtt31.rs), which rumqttc does
//!   not speak either; with `--unix` it then dials the socket.
//!
//! TLS and WebSocket stay in rumqttc, end to end through the relay. One relay serves every
//! reconnect of the process.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::proxy::ProxySettings;

mod http;
mod mqtt31;
mod socks;

/// How the relay reaches the broker.
#[derive(Debug)]
pub enum Route {
    Direct,
    Http(ProxySettings),
    Socks5(ProxySettings),
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf),
}

/// Where the relay connects, and how.
#[derive(Debug)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub route: Route,
    /// Rewrite the first packet, rumqttc's 3.1.1 CONNECT, into a 3.1 one.
    pub mqtt31: bool,
}

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

    fn record(&self, e: io::Error) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(e);
        }
    }
}

/// Starts the relay to `upstream` on a free loopback port. Must be called on the runtime.
pub fn start(upstream: Upstream) -> io::Result<Arc<Relay>> {
    let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let relay = Arc::new(Relay {
        port: listener.local_addr()?.port(),
        failure: Mutex::new(None),
    });
    let (shared, upstream) = (relay.clone(), Arc::new(upstream));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, shared) = (upstream.clone(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = tunnel(client, &upstream, &shared).await {
                    tracing::debug!("relay: {e}");
                }
            });
        }
    });
    Ok(relay)
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One tunnel: read rumqttc's CONNECT request, reach the broker, answer, relay bytes.
async fn tunnel(mut client: TcpStream, up: &Upstream, relay: &Relay) -> io::Result<()> {
    if read_head(&mut client).await?.is_none() {
        return Ok(());
    }
    let mut broker = match dial(up).await {
        Ok(s) => s,
        Err(e) => {
            // Recorded before the answer, so it is there when rumqttc reports the 502.
            relay.record(e);
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return Ok(());
        }
    };
    client.set_nodelay(true)?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    if up.mqtt31 {
        mqtt31::rewrite_connect(&mut client, &mut broker).await?;
    }
    // A tunnel ends when either side closes; what ends it is not a failure to report.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
    Ok(())
}

/// An HTTP head up to its blank line, or None if the peer left (or sent 8 KiB) first. Byte by
/// byte, so nothing after it (the start of the tunnel) is consumed.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    Ok(Some(head))
}

async fn dial(up: &Upstream) -> io::Result<Box<dyn Stream>> {
    match &up.route {
        Route::Direct => {
            let s = TcpStream::connect((up.host.as_str(), up.port)).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Route::Http(proxy) => {
            let s = http::connect(proxy, &up.host, up.port).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Route::Socks5(proxy) => {
            let s = socks::connect(proxy, &up.host, up.port).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        #[cfg(unix)]
        Route::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Route::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix-domain sockets are not supported on this system",
        )),
    }
}
