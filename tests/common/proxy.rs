//! A small HTTP CONNECT proxy on a thread, on a free port of 127.0.0.1. It records what each
//! client asked for and, inside each tunnel, the first bytes the client sent (for plain ws:
//! the upgrade request line and headers). It only dials loopback targets, and names a test
//! mapped to 127.0.0.1 with `map_to_loopback` (so a client can dial a name that is not
//! loopback, such as `broker.test`, which environment proxies are used for): a CONNECT to any
//! other host is answered 502 without a name lookup, so a test never sends traffic off the
//! machine.

use super::server::Acceptor;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of a tunnel's first client bytes is kept.
const INNER_HEAD_MAX: usize = 8192;
/// A client that sends an incomplete CONNECT request is dropped after this long.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// One CONNECT request the proxy received.
#[derive(Clone, Debug, Default)]
pub struct Tunnel {
    /// `CONNECT localhost:1234 HTTP/1.1`
    pub request_line: String,
    /// The request's header lines, as sent.
    pub headers: Vec<String>,
    /// The first bytes the client sent through the tunnel: up to the end of an HTTP head
    /// (`\r\n\r\n`), or at most `INNER_HEAD_MAX` bytes.
    pub inner: Vec<u8>,
}

impl Tunnel {
    /// The CONNECT target, `host:port`.
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }

    /// The value of header `name` (case-insensitive) in the CONNECT request.
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(self.headers.iter().map(String::as_str), name)
    }

    /// The lines of the HTTP head sent inside the tunnel (plain ws), without the blank line.
    pub fn inner_head_lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.inner);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        head.split("\r\n").map(str::to_string).collect()
    }

    /// The value of header `name` (case-insensitive) in the HTTP head sent inside the tunnel.
    pub fn inner_header(&self, name: &str) -> Option<String> {
        let lines = self.inner_head_lines();
        header_value(lines.iter().skip(1).map(String::as_str), name)
    }
}

fn header_value<'a>(lines: impl Iterator<Item = &'a str>, name: &str) -> Option<String> {
    lines
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

#[derive(Clone, Copy)]
enum Mode {
    Tunnel,
    /// Answer every CONNECT with `403 Forbidden` and close.
    Refuse,
}

#[derive(Default)]
struct Shared {
    /// The peer address of each accepted connection, in order.
    accepted: Mutex<Vec<SocketAddr>>,
    tunnels: Mutex<Vec<Tunnel>>,
    /// Host names (lower case) that CONNECT requests may name, dialled at 127.0.0.1.
    names: Mutex<Vec<String>>,
}

pub struct Proxy {
    /// Probe connections made by `connections()`, which are not counted.
    probes: AtomicUsize,
    shared: Arc<Shared>,
    server: Acceptor,
}

impl Proxy {
    /// A proxy that opens the tunnels asked for (to loopback targets).
    pub fn start() -> Proxy {
        Proxy::spawn(Mode::Tunnel)
    }

    /// A proxy that answers every CONNECT with `HTTP/1.1 403 Forbidden`.
    pub fn refusing() -> Proxy {
        Proxy::spawn(Mode::Refuse)
    }

    fn spawn(mode: Mode) -> Proxy {
        let shared = Arc::new(Shared::default());
        let server = {
            let shared = shared.clone();
            Acceptor::spawn("proxy", move |conn| {
                if let Ok(peer) = conn.peer_addr() {
                    shared.accepted.lock().unwrap().push(peer);
                }
                let _ = serve(conn, mode, &shared);
            })
        };
        Proxy {
            probes: AtomicUsize::new(0),
            shared,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT`, for `--proxy` or `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Open tunnels to `name:PORT` at 127.0.0.1:PORT, as if `name` resolved to 127.0.0.1.
    pub fn map_to_loopback(&self, name: &str) {
        self.shared
            .names
            .lock()
            .unwrap()
            .push(name.to_ascii_lowercase());
    }

    /// The CONNECT requests received so far (complete heads only), in arrival order.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.shared.tunnels.lock().unwrap().clone()
    }

    /// How many connections clients made to the proxy so far, including any still waiting in
    /// the listen backlog: a probe connection queues up behind them, and the acceptor takes
    /// connections in order, so once it has taken the probe it has taken every earlier one.
    pub fn connections(&self) -> usize {
        let probe = TcpStream::connect(("127.0.0.1", self.port())).expect("connect to the proxy");
        let me = probe.local_addr().expect("probe address");
        let earlier_probes = self.probes.fetch_add(1, Ordering::SeqCst);
        let end = Instant::now() + super::DEADLINE;
        loop {
            if let Some(i) = self
                .shared
                .accepted
                .lock()
                .unwrap()
                .iter()
                .position(|p| *p == me)
            {
                return i - earlier_probes;
            }
            assert!(Instant::now() < end, "the proxy did not accept its probe");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn serve(mut client: TcpStream, mode: Mode, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or("").to_string();
    let index = {
        let mut tunnels = shared.tunnels.lock().unwrap();
        tunnels.push(Tunnel {
            request_line,
            headers: lines.map(str::to_string).collect(),
            inner: Vec::new(),
        });
        tunnels.len() - 1
    };
    if let Mode::Refuse = mode {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    }
    let target = shared.tunnels.lock().unwrap()[index].clone();
    let Some(addr) = loopback_target(&target).or_else(|| mapped_target(&target, shared)) else {
        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    };
    let upstream = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(_) => {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(());
        }
    };
    client.set_read_timeout(None)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;

    // Upstream to client on a thread of its own; client to upstream here, recording the start.
    let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
    let down = std::thread::spawn(move || {
        let _ = io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let mut upstream_write = upstream;
    let mut buf = [0u8; 16384];
    let mut recording = true;
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if recording {
            // Recorded before it is forwarded, so it is there once the client has its answer.
            let mut tunnels = shared.tunnels.lock().unwrap();
            let inner = &mut tunnels[index].inner;
            let room = INNER_HEAD_MAX - inner.len();
            inner.extend_from_slice(&buf[..n.min(room)]);
            recording = inner.len() < INNER_HEAD_MAX && !contains(inner, b"\r\n\r\n");
        }
        if upstream_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = upstream_write.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}

/// The request head up to and without the blank line, or None if the client left first.
fn read_head(client: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing after the head (the start of the tunnel) is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 65536 || client.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    head.truncate(head.len() - 4);
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The address to dial for a CONNECT to `localhost:PORT` or a loopback IP; None for anything
/// else (no name is looked up).
fn loopback_target(tunnel: &Tunnel) -> Option<SocketAddr> {
    if !tunnel.request_line.starts_with("CONNECT ") {
        return None;
    }
    let target = tunnel.target();
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>().ok().filter(IpAddr::is_loopback)?
    };
    Some(SocketAddr::new(ip, port))
}

/// The address to dial for a CONNECT to `NAME:PORT` where `NAME` was given to
/// `Proxy::map_to_loopback`: 127.0.0.1:PORT.
fn mapped_target(tunnel: &Tunnel, shared: &Shared) -> Option<SocketAddr> {
    if !tunnel.request_line.starts_with("CONNECT ") {
        return None;
    }
    let (host, port) = tunnel.target().rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.to_ascii_lowercase();
    let names = shared.names.lock().unwrap();
    names
        .contains(&host)
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
