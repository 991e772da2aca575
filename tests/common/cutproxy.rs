//! A TCP relay on a free port of 127.0.0.1 that forwards bytes to a target port and can break
//! every live connection on command (`cut`), refuse new ones for a while (`set_accepting`) or
//! stop listening (`close`). It counts the bytes it forwarded each way, so a test can wait for
//! a packet to be on the wire (or for acknowledgements to have come back) instead of guessing.
//!
//! Plain std threads: one accepting, two per connection. Everything stops when it is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the accepting thread looks at its flags when nobody connects.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

pub struct CutProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    target: SocketAddr,
    /// Both sockets of each connection being relayed, by connection number.
    live: Mutex<Vec<(usize, TcpStream, TcpStream)>>,
    /// False: connections are accepted and closed at once (the client sees the connection
    /// closed before any answer).
    accepting: AtomicBool,
    /// True: stop listening, so that connecting is refused.
    closed: AtomicBool,
    /// True: bytes from clients are not forwarded for now (see `hold_up`).
    hold_up: AtomicBool,
    /// Bytes a second forwarded from clients at most (see `throttled`); 0: no limit.
    rate_up: AtomicU64,
    /// Connections relayed to the target so far.
    relayed: AtomicUsize,
    /// Bytes written to the target (client to broker) and to clients (broker to client).
    up: AtomicU64,
    down: AtomicU64,
    /// Whole PUBLISH packets forwarded to the target, and PUBACK and PUBREC packets forwarded
    /// to clients, on the connection relayed last.
    publishes_up: AtomicU64,
    acks_down: AtomicU64,
    /// True while the upward copy of the connection relayed last is waiting in `hold_up`.
    held: AtomicBool,
    /// The connection relayed last.
    newest: AtomicUsize,
    /// Connections from this number on forward their first chunk to the client (the CONNACK)
    /// and then nothing more for now (see `hold_acks_of_new_connections`); usize::MAX: none.
    hold_down_from: AtomicUsize,
}

impl CutProxy {
    /// Relay 127.0.0.1:<new port> to 127.0.0.1:`target_port`. The target need not be up yet:
    /// a client that connects while it is down is disconnected at once.
    pub fn start(target_port: u16) -> CutProxy {
        CutProxy::start_with(target_port, 0)
    }

    /// As `start`, forwarding at most `bytes_per_second` from clients, as a slow uplink would
    /// (a piece every 20 ms). Its receiving sockets keep a small buffer, so a client's writes
    /// wait on the link rather than first fill megabytes of buffer.
    pub fn throttled(target_port: u16, bytes_per_second: u64) -> CutProxy {
        assert!(bytes_per_second > 0);
        CutProxy::start_with(target_port, bytes_per_second)
    }

    fn start_with(target_port: u16, rate_up: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the cut proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        if rate_up > 0 {
            small_receive_buffer(&listener);
        }
        let shared = Arc::new(Shared {
            target: SocketAddr::from(([127, 0, 0, 1], target_port)),
            live: Mutex::new(Vec::new()),
            accepting: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            hold_up: AtomicBool::new(false),
            rate_up: AtomicU64::new(rate_up),
            relayed: AtomicUsize::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            publishes_up: AtomicU64::new(0),
            acks_down: AtomicU64::new(0),
            held: AtomicBool::new(false),
            newest: AtomicUsize::new(0),
            hold_down_from: AtomicUsize::new(usize::MAX),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, shared))
        };
        CutProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Break every live connection both ways (the client reads EOF, as does the broker), as a
    /// dropped network path or a restarted NAT would. Returns how many there were.
    pub fn cut(&self) -> usize {
        let conns: Vec<_> = std::mem::take(&mut *self.shared.live.lock().unwrap());
        for (_, client, target) in &conns {
            let _ = client.shutdown(Shutdown::Both);
            let _ = target.shutdown(Shutdown::Both);
        }
        conns.len()
    }

    /// While false, new connections are accepted and closed at once; live ones are untouched.
    pub fn set_accepting(&self, accepting: bool) {
        self.shared.accepting.store(accepting, Ordering::SeqCst);
    }

    /// While true, nothing more from clients reaches the target: it waits in the sockets'
    /// buffers (and is lost if the connection is cut meanwhile), as on a path that stalls one
    /// way. Bytes to clients still flow.
    pub fn hold_up(&self, hold: bool) {
        self.shared.hold_up.store(hold, Ordering::SeqCst);
    }

    /// While true, connections relayed from now on pass the first bytes from the target (the
    /// CONNACK) to the client, and then nothing more: the target's acknowledgements wait in the
    /// sockets' buffers, as on a slow path. False lets them all go on. Bytes to the target
    /// still flow.
    pub fn hold_acks_of_new_connections(&self, hold: bool) {
        let from = if hold { self.relayed() } else { usize::MAX };
        self.shared.hold_down_from.store(from, Ordering::SeqCst);
    }

    /// Whole PUBLISH packets forwarded to the target on the connection relayed last.
    pub fn publishes_up(&self) -> u64 {
        self.shared.publishes_up.load(Ordering::SeqCst)
    }

    /// Stop listening (connecting is refused from now on) and cut every live connection.
    /// Returns once the port is closed.
    pub fn close(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.cut();
    }

    /// Connections relayed to the target so far (not counting refused ones).
    pub fn relayed(&self) -> usize {
        self.shared.relayed.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to the target so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the target to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// Whether, on the connection relayed last, `hold_up` holds everything back and the target
    /// has acknowledged (PUBACK or PUBREC) every PUBLISH that reached it.
    pub fn held_and_acknowledged(&self) -> bool {
        let s = &self.shared;
        s.held.load(Ordering::SeqCst)
            && s.publishes_up.load(Ordering::SeqCst) == s.acks_down.load(Ordering::SeqCst)
    }

    /// Wait until `cond(self)` holds, polling every few milliseconds; panics with `what` after
    /// `deadline`.
    #[track_caller]
    pub fn wait_until(&self, what: &str, deadline: Duration, cond: impl Fn(&CutProxy) -> bool) {
        let end = Instant::now() + deadline;
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "cut proxy: no {what} within {deadline:?} (relayed {} connections, {} bytes up, {} bytes down)",
                self.relayed(),
                self.bytes_up(),
                self.bytes_down()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connections accepted from `listener` take its receive buffer size: 64 KiB, where Linux
/// would let it grow to megabytes, so that a throttled link is felt by the client's writes.
fn small_receive_buffer(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 * 1024;
    // SAFETY: a valid socket and a c_int option of the size given.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0;
    while !shared.closed.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if !shared.accepting.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let target = match TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) {
            Ok(t) => t,
            Err(_) => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = target.set_nodelay(true);
        let (Ok(c2), Ok(t2), Ok(c3), Ok(t3)) = (
            client.try_clone(),
            target.try_clone(),
            client.try_clone(),
            target.try_clone(),
        ) else {
            continue;
        };
        let id = next_id;
        next_id += 1;
        shared.newest.store(id, Ordering::SeqCst);
        shared.publishes_up.store(0, Ordering::SeqCst);
        shared.acks_down.store(0, Ordering::SeqCst);
        shared.live.lock().unwrap().push((id, c3, t3));
        shared.relayed.fetch_add(1, Ordering::SeqCst);
        let up = shared.clone();
        std::thread::spawn(move || pump(client, target, id, &up, true));
        let down = shared.clone();
        std::thread::spawn(move || pump(t2, c2, id, &down, false));
    }
    // The listener is dropped here: the port is closed.
}

/// Copy `from` to `to` until either side fails or closes; then close both and forget the
/// connection.
fn pump(mut from: TcpStream, mut to: TcpStream, id: usize, shared: &Shared, up: bool) {
    let counter = if up { &shared.up } else { &shared.down };
    let newest = || shared.newest.load(Ordering::SeqCst) == id;
    let mut packets = Packets::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut chunks = 0u64;
    let live = || shared.live.lock().unwrap().iter().any(|(i, _, _)| *i == id);
    'relay: loop {
        while !up && chunks > 0 && id >= shared.hold_down_from.load(Ordering::SeqCst) {
            if !live() {
                break 'relay;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        while up && shared.hold_up.load(Ordering::SeqCst) {
            if newest() {
                shared.held.store(true, Ordering::SeqCst);
            }
            // Held: stop when the connection is cut meanwhile.
            if !live() {
                break 'relay;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if up && newest() {
            shared.held.store(false, Ordering::SeqCst);
        }
        let rate = if up {
            shared.rate_up.load(Ordering::SeqCst)
        } else {
            0
        };
        let most = match rate {
            0 => buf.len(),
            rate => (rate / 50).clamp(1, buf.len() as u64) as usize,
        };
        let n = match from.read(&mut buf[..most]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::SeqCst);
        chunks += 1;
        if rate > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        packets.feed(&buf[..n], |kind| {
            let counted = match (up, kind) {
                (true, 3) => &shared.publishes_up,
                (false, 4 | 5) => &shared.acks_down,
                _ => return,
            };
            if newest() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared.live.lock().unwrap().retain(|(i, _, _)| *i != id);
}

/// Splits a byte stream into MQTT packets, to count them by type.
#[derive(Default)]
struct Packets {
    /// The fixed header read so far of the packet that comes next.
    header: Vec<u8>,
    /// The packet whose body is being passed: its type, and how many bytes of it are left.
    body: Option<(u8, usize)>,
}

impl Packets {
    /// Pass `bytes`; `whole(kind)` for each packet that ends in them.
    fn feed(&mut self, mut bytes: &[u8], mut whole: impl FnMut(u8)) {
        while !bytes.is_empty() || matches!(self.body, Some((_, 0))) {
            if let Some((kind, left)) = self.body {
                let take = left.min(bytes.len());
                bytes = &bytes[take..];
                if take == left {
                    whole(kind);
                    self.body = None;
                } else {
                    self.body = Some((kind, left - take));
                }
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            let h = &self.header;
            if h.len() >= 2 && h[h.len() - 1] & 0x80 == 0 {
                let len = h[1..]
                    .iter()
                    .enumerate()
                    .fold(0, |len, (i, b)| len | ((*b as usize & 0x7f) << (7 * i)));
                self.body = Some((h[0] >> 4, len));
                self.header.clear();
            }
        }
    }
}
