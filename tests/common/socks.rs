//! A small SOCKS5 server (RFC 1928, with RFC 1929 user/password) on a thread, on a free port of
//! 127.0.0.1. It records each CONNECT request: the authentication offered and used, and the
//! target as sent (a host name or an address), so tests can tell `socks5h://` (the name) from
//! `socks5://` (an address). Like the HTTP proxy of proxy.rs it only dials loopback targets
//! and names mapped with `map_to_loopback`; any other target is answered "host unreachable"
//! without a lookup, so a test never sends traffic off the machine.

use super::server::Acceptor;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client that stalls mid-handshake is dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// SOCKS5 reply codes.
const SUCCEEDED: u8 = 0x00;
const NOT_ALLOWED: u8 = 0x02;
const HOST_UNREACHABLE: u8 = 0x04;
const CONNECTION_REFUSED: u8 = 0x05;

/// What a CONNECT asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// ATYP 3: a host name, for the proxy to resolve.
    Name(String, u16),
    /// ATYP 1 or 4: an address.
    Addr(SocketAddr),
}

/// One client of the proxy, as far as it got.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The authentication methods the client offered (0: none, 2: user/password).
    pub offered: Vec<u8>,
    /// The user name and password it sent, if it authenticated.
    pub credentials: Option<(String, String)>,
    /// None if the handshake ended before a CONNECT request.
    pub target: Option<Target>,
}

#[derive(Clone)]
enum Mode {
    Open,
    /// Only this user name and password are let in.
    Password(String, String),
    /// Every CONNECT is answered "not allowed by ruleset".
    Refuse,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    names: Mutex<Vec<String>>,
}

pub struct Socks {
    shared: Arc<Shared>,
    server: Acceptor,
}

impl Socks {
    /// A proxy without authentication.
    pub fn start() -> Socks {
        Socks::spawn(Mode::Open)
    }

    /// A proxy that wants `user` and `password` (RFC 1929).
    pub fn with_password(user: &str, password: &str) -> Socks {
        Socks::spawn(Mode::Password(user.to_string(), password.to_string()))
    }

    /// A proxy that answers every CONNECT "connection not allowed by ruleset".
    pub fn refusing() -> Socks {
        Socks::spawn(Mode::Refuse)
    }

    fn spawn(mode: Mode) -> Socks {
        let shared = Arc::new(Shared::default());
        let server = {
            let shared = shared.clone();
            Acceptor::spawn("SOCKS5 proxy", move |conn| {
                let _ = serve(conn, &mode, &shared);
            })
        };
        Socks { shared, server }
    }

    /// `SCHEME://[USERINFO@]127.0.0.1:PORT`, e.g. `url("socks5h", "")`.
    pub fn url(&self, scheme: &str, userinfo: &str) -> String {
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}", self.server.port())
    }

    /// Connect requests for `name:PORT` go to 127.0.0.1:PORT, as if `name` resolved there.
    pub fn map_to_loopback(&self, name: &str) {
        let mut names = self.shared.names.lock().unwrap();
        names.push(name.to_ascii_lowercase());
    }

    /// What clients asked for so far, in the order they reached the proxy.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }
}

fn read_bytes(conn: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    conn.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_u8(conn: &mut TcpStream) -> io::Result<u8> {
    Ok(read_bytes(conn, 1)?[0])
}

fn serve(mut client: TcpStream, mode: &Mode, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    // Each update replaces this client's entry, so what it got to is there even if it stops.
    let index = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(Request::default());
        requests.len() - 1
    };
    let update = |f: &dyn Fn(&mut Request)| f(&mut shared.requests.lock().unwrap()[index]);

    // Greeting: VER NMETHODS METHODS.
    if read_u8(&mut client)? != 5 {
        return Ok(());
    }
    let n = read_u8(&mut client)?;
    let offered = read_bytes(&mut client, n.into())?;
    update(&|r| r.offered = offered.clone());
    let wanted = match mode {
        Mode::Password(..) => 2,
        _ => 0,
    };
    if !offered.contains(&wanted) {
        client.write_all(&[5, 0xff])?;
        return Ok(());
    }
    client.write_all(&[5, wanted])?;
    if let Mode::Password(user, password) = mode {
        // VER ULEN UNAME PLEN PASSWD
        let _version = read_u8(&mut client)?;
        let ulen = read_u8(&mut client)?;
        let got_user = String::from_utf8_lossy(&read_bytes(&mut client, ulen.into())?).into_owned();
        let plen = read_u8(&mut client)?;
        let got_password =
            String::from_utf8_lossy(&read_bytes(&mut client, plen.into())?).into_owned();
        let ok = got_user == *user && got_password == *password;
        update(&|r| r.credentials = Some((got_user.clone(), got_password.clone())));
        client.write_all(&[1, if ok { 0 } else { 1 }])?;
        if !ok {
            return Ok(());
        }
    }

    // Request: VER CMD RSV ATYP DST.ADDR DST.PORT
    let head = read_bytes(&mut client, 4)?;
    let target = match head[3] {
        1 => {
            let a = read_bytes(&mut client, 4)?;
            let ip = IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            Target::Addr(SocketAddr::new(ip, read_port(&mut client)?))
        }
        4 => {
            let a: [u8; 16] = read_bytes(&mut client, 16)?.try_into().unwrap();
            let ip = IpAddr::V6(Ipv6Addr::from(a));
            Target::Addr(SocketAddr::new(ip, read_port(&mut client)?))
        }
        3 => {
            let len = read_u8(&mut client)?;
            let name = String::from_utf8_lossy(&read_bytes(&mut client, len.into())?).into_owned();
            Target::Name(name, read_port(&mut client)?)
        }
        _ => return Ok(()),
    };
    update(&|r| r.target = Some(target.clone()));
    if head[1] != 1 || matches!(mode, Mode::Refuse) {
        return reply(&mut client, NOT_ALLOWED);
    }
    let Some(addr) = dial_address(&target, shared) else {
        return reply(&mut client, HOST_UNREACHABLE);
    };
    let upstream = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(_) => return reply(&mut client, CONNECTION_REFUSED),
    };
    reply(&mut client, SUCCEEDED)?;
    client.set_read_timeout(None)?;
    let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
    let down = std::thread::spawn(move || {
        let _ = io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let mut upstream_write = upstream;
    let _ = io::copy(&mut client, &mut upstream_write);
    let _ = upstream_write.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}

fn read_port(conn: &mut TcpStream) -> io::Result<u16> {
    let p = read_bytes(conn, 2)?;
    Ok(u16::from_be_bytes([p[0], p[1]]))
}

/// VER REP RSV ATYP(IPv4) BND.ADDR(0.0.0.0) BND.PORT(0)
fn reply(client: &mut TcpStream, code: u8) -> io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
}

/// Loopback addresses, `localhost` and mapped names; None for anything else.
fn dial_address(target: &Target, shared: &Shared) -> Option<SocketAddr> {
    match target {
        Target::Addr(a) => a.ip().is_loopback().then_some(*a),
        Target::Name(name, port) => {
            let name = name.to_ascii_lowercase();
            let known = name == "localhost" || shared.names.lock().unwrap().contains(&name);
            known.then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port))
        }
    }
}
