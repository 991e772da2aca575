//! A scripted fake broker on a free port of 127.0.0.1, for the tests that need a broker to
//! misbehave in a way no real one will (rumqttc's tests/broker.rs is the model): it accepts
//! connections and plays a test's script on each. The script reads the client's packets
//! (`Conn::read`, decoded as far as a test needs) and writes the replies it wants.
//!
//! - `FakeBroker::bind()` alone listens and never answers: the kernel accepts the connection
//!   from its backlog and the CONNECT goes unanswered.
//! - `serve_one(script)` plays `script` on the first connection; `Played::result` is what it
//!   returned (or saw go wrong), once the client is done.
//! - `serve_in_turn(script)` lets `script` take connections one after another.
//! - `serve_all(script)` plays it on every connection until dropped, and counts them.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use super::{Out, Proto, DEADLINE};

/// How long a script waits for the client's next packet.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct FakeBroker {
    port: u16,
    listener: TcpListener,
}

impl FakeBroker {
    /// Listening on a free port; nothing answers until `serve_one` or `serve_all`.
    pub fn bind() -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake broker");
        let port = listener.local_addr().expect("fake broker address").port();
        FakeBroker { port, listener }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Play `script` on the first connection, on a thread of its own.
    pub fn serve_one<T: Send + 'static>(
        self,
        script: impl FnOnce(&mut Conn) -> Result<T, String> + Send + 'static,
    ) -> Played<T> {
        self.serve_in_turn(move |accept| script(&mut accept.next()?))
    }

    /// Play `script` on a thread of its own, taking connections in turn (`Accept::next`): for
    /// what a client does across a reconnect.
    pub fn serve_in_turn<T: Send + 'static>(
        self,
        script: impl FnOnce(&mut Accept) -> Result<T, String> + Send + 'static,
    ) -> Played<T> {
        let (tx, rx) = mpsc::channel();
        let mut accept = Accept {
            listener: self.listener,
        };
        std::thread::spawn(move || {
            let _ = tx.send(script(&mut accept));
        });
        Played {
            port: self.port,
            rx,
        }
    }

    /// Play `script` on every connection, each on a thread of its own, until dropped.
    pub fn serve_all(self, script: fn(&mut Conn)) -> Serving {
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (connections.clone(), stop.clone());
        let listener = self.listener;
        listener.set_nonblocking(true).expect("non-blocking");
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            if let Ok(mut conn) = Conn::new(stream) {
                                script(&mut conn);
                            }
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Serving {
            port: self.port,
            connections,
            stop,
        }
    }
}

/// The listener, as a script that takes several connections sees it.
pub struct Accept {
    listener: TcpListener,
}

impl Accept {
    /// The next connection.
    pub fn next(&mut self) -> Result<Conn, String> {
        let (stream, _) = self.listener.accept().map_err(|e| format!("accept: {e}"))?;
        Conn::new(stream)
    }
}

/// A script playing on one connection (`FakeBroker::serve_one`).
pub struct Played<T> {
    pub port: u16,
    rx: Receiver<Result<T, String>>,
}

impl<T> Played<T> {
    /// What the script returned, once it is done; a failure naming what went wrong, with the
    /// client's stderr.
    #[track_caller]
    pub fn result(self, client: &Out) -> T {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => panic!("fake broker: {e}\nclient stderr:\n{}", client.stderr),
            Err(e) => panic!(
                "fake broker did not finish: {e}\nclient stderr:\n{}",
                client.stderr
            ),
        }
    }
}

/// A script playing on every connection (`FakeBroker::serve_all`); stops accepting on drop.
pub struct Serving {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Serving {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One client connection, as a script sees it.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    fn new(stream: TcpStream) -> Result<Conn, String> {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Conn { stream })
    }

    /// The socket itself, e.g. for a TLS handshake.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The client's next packet.
    pub fn read(&mut self) -> Result<Packet, String> {
        read_packet(&mut self.stream)
            .map(Packet)
            .map_err(|e| format!("reading a packet: {e}"))
    }

    /// The client's CONNECT, checked to be one (of protocol level 4 for 3.1.1, 5 for 5).
    pub fn expect_connect(&mut self, proto: Proto) -> Result<Packet, String> {
        let connect = self.read()?;
        if connect.kind() != 0x10 {
            return Err(format!("expected CONNECT, got {:02x?}", connect.0));
        }
        // "MQTT" with its length, then the protocol level.
        let level = connect.body().get(6).copied();
        let want = if proto == Proto::V5 { 5 } else { 4 };
        if level != Some(want) {
            return Err(format!(
                "CONNECT with protocol level {level:?}, expected {want}"
            ));
        }
        Ok(connect)
    }

    /// A CONNACK that accepts, with `session_present`; v5 adds an empty property list.
    pub fn connack(&mut self, proto: Proto, session_present: bool) -> Result<(), String> {
        match proto {
            Proto::V5 => self.connack_v5(session_present, &[]),
            _ => self.write(&packet(0x20, &[u8::from(session_present), 0])),
        }
    }

    /// An MQTT 5 CONNACK that accepts, with `session_present` and these properties (encoded).
    pub fn connack_v5(&mut self, session_present: bool, properties: &[u8]) -> Result<(), String> {
        let mut rest = vec![u8::from(session_present), 0, properties.len() as u8];
        rest.extend_from_slice(properties);
        self.write(&packet(0x20, &rest))
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| e.to_string())
    }

    /// Read until the client sends DISCONNECT (true) or goes away (false), answering pings.
    pub fn until_disconnect(&mut self) -> Result<bool, String> {
        while let Ok(p) = self.read() {
            match p.kind() {
                0xc0 => self.write(&[0xd0, 0])?,
                0xe0 => return Ok(true),
                _ => {}
            }
        }
        Ok(false)
    }
}

/// One MQTT packet, fixed header included.
pub struct Packet(pub Vec<u8>);

impl Packet {
    /// The packet type: the high four bits of the first byte (0x10 CONNECT, 0x82 is 0x80 …).
    pub fn kind(&self) -> u8 {
        self.0[0] & 0xf0
    }

    /// What follows the fixed header.
    pub fn body(&self) -> &[u8] {
        let (_, size) = varint(&self.0[1..]);
        &self.0[1 + size..]
    }
}

/// One MQTT packet read from `conn`, fixed header included.
fn read_packet(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut byte = [0u8; 1];
    conn.read_exact(&mut byte)?;
    let mut packet = vec![byte[0]];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        conn.read_exact(&mut byte)?;
        packet.push(byte[0]);
        len |= ((byte[0] & 0x7f) as usize) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    packet.extend(body);
    Ok(packet)
}

/// A variable byte integer (remaining length, property length) at the start of `bytes`:
/// (value, its size in bytes).
pub fn varint(bytes: &[u8]) -> (usize, usize) {
    let (mut value, mut shift) = (0usize, 0);
    for (i, b) in bytes.iter().enumerate() {
        value |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, bytes.len())
}

/// `first` byte, the remaining length, then `rest`.
pub fn packet(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = rest.len();
    loop {
        let mut b = (len & 0x7f) as u8;
        len >>= 7;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(rest);
    out
}
