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
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

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
    /// `bench --ifaddr`: the address the connection leaves from (to the broker, or to the proxy).
    pub source: Option<IpAddr>,
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

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
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

/// A stream to the broker by `up.route`, TCP_NODELAY set: the relay's way, and held.rs's.
pub async fn dial(up: &Upstream) -> io::Result<Box<dyn Stream>> {
    match &up.route {
        Route::Direct => {
            let s = tcp(&up.host, up.port, up.source).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Route::Http(proxy) => {
            let s = http::connect(proxy, &up.host, up.port, up.source).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s))
        }
        Route::Socks5(proxy) => {
            let s = socks::connect(proxy, &up.host, up.port, up.source).await?;
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

/// A TCP connection to `host:port`, trying each address the name resolves to in turn (as
/// rumqttc does), from `source` if given: then only addresses of its family are tried.
pub async fn tcp(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    tcp_to(host, &addrs, Some(source)).await
}

/// A TCP connection to the first of `addrs` (`host`'s) that accepts one, from `source` if
/// given: then only addresses of its family are tried.
pub async fn tcp_to(
    host: &str,
    addrs: &[SocketAddr],
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let mut last = None;
    for &addr in addrs {
        let connected = match source {
            Some(source) if addr.is_ipv4() != source.is_ipv4() => continue,
            Some(source) => connect_from(source, addr).await,
            None => TcpStream::connect(addr).await,
        };
        match connected {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| match source {
        Some(source) => io::Error::other(format!(
            "{host} has no {} address to reach from --ifaddr {source}",
            if source.is_ipv4() { "IPv4" } else { "IPv6" }
        )),
        None => io::Error::other(format!("{host} has no address")),
    }))
}

async fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // bind() with port 0 would pick the port before the destination is known, so each source
    // address would give out its ephemeral ports once across all destinations; deferred to
    // connect(), a port is only unique per destination, as without --ifaddr.
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads an int we own, on a descriptor this socket owns.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot connect from --ifaddr {source}: {e}: is it an address of this machine?"
            ),
        )
    })?;
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_connection_leaves_from_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [listener.local_addr().unwrap()];
        // All of 127.0.0.0/8 is this machine's on Linux.
        let source: IpAddr = "127.0.0.3".parse().unwrap();
        let (client, accepted) =
            tokio::join!(tcp_to("127.0.0.1", &addrs, Some(source)), listener.accept());
        assert_eq!(client.unwrap().local_addr().unwrap().ip(), source);
        assert_eq!(accepted.unwrap().1.ip(), source);
    }

    #[tokio::test]
    async fn only_addresses_of_the_source_family_are_tried() {
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let e = tcp_to("broker", &[v4], Some("::1".parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "broker has no IPv6 address to reach from --ifaddr ::1"
        );
    }
}
