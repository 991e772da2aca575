//! Connections that are opened and then kept alive (`bench conn`'s) or only published on at
//! QoS 0 and 1 (`bench pub`'s, which encodes its PUBLISHes with `publish_packet` and writes a
//! burst of them at once, where rumqttc writes each request on its own). A Session's rumqttc
//! event loop holds about 38 KB per connection whatever it does (an 8 KB QoS 2 bit set, 8 KB
//! read and write buffers, the in-flight slots), so 10 000 idle connections took 375 MB. A held
//! connection is its socket, a timer and a few bytes of buffer. Opening it step by step also
//! times each step (TCP, TLS, CONNACK), which rumqttc does in one call, and it can leave from a
//! chosen address (`--ifaddr`), which rumqttc cannot.
//!
//! What the broker sees is a Session's: the CONNECT is rumqttc's own encoding of the same
//! options (`v4::connect_packet`, `v5::connect_packet`), the connection is dialled as the relay
//! dials (proxies, Unix sockets), and every failure is put in a Session's words.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::{BufMut, BytesMut};
use rumqttc::tokio_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::mqtt::put_remaining_length;
use super::proxy::ProxyKind;
use super::relay::{self, Route, Stream, Upstream};
use super::settings::TlsSettings;
use super::transport::{self, Peer};
use super::{errors, sleep_until, tls, v4, v5, Event, Protocol, Qos, Settings};

/// A ping, in 3.1.1 and 5 alike.
const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// A DISCONNECT without a reason code: "normal disconnection", in 3.1.1 and 5 alike.
const DISCONNECT: [u8; 2] = [0xE0, 0x00];
/// The read buffer's room while reads are batched (`batch_reads`).
const BATCH_READ: usize = 4096;

pub struct Held {
    io: Box<dyn Stream>,
    /// The TCP socket under `io`, where it was dialled directly: `batch_reads` sets its
    /// SO_RCVLOWAT.
    #[cfg(unix)]
    tcp_fd: Option<std::os::fd::RawFd>,
    /// The SO_RCVLOWAT in force: 1, the kernel's default, until `batch_reads` raises it.
    lowat: usize,
    /// What has been read of a packet not yet whole.
    buf: BytesMut,
    /// Zero: no pings.
    keepalive: Duration,
    protocol: Protocol,
    peer: Peer,
    /// MQTT 5: the QoS 1/2 PUBLISHes the broker takes in flight at once (its CONNACK's
    /// Receive Maximum); None: it said nothing (always so under 3.1.1).
    receive_maximum: Option<u16>,
    /// MQTT 5: the largest packet the broker takes (its CONNACK's Maximum Packet Size).
    maximum_packet_size: Option<u32>,
}

/// How long each step of opening took.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    /// To an established TCP connection (through the proxy, if any).
    pub tcp: Duration,
    pub tls: Option<Duration>,
    /// From writing CONNECT to reading CONNACK.
    pub connack: Duration,
}

impl Held {
    /// Whether `s` can be held this way. Not: WebSocket (its framing is rumqttc's), MQTT 3.1
    /// (the relay rewrites the CONNECT), a session kept across connections (its queued messages
    /// would have to be acknowledged), MQTT 5 enhanced authentication (an AUTH exchange).
    pub fn fits(s: &Settings) -> bool {
        s.websocket.is_none()
            && !s.mqtt31
            && s.clean_session
            && s.connect_properties.authentication_method.is_none()
    }

    /// The broker's addresses, looked up once for all the connections of a run (a lookup each,
    /// on tokio's blocking threads, was a third of `bench conn`'s CPU); None where a proxy or a
    /// socket path is dialled instead. A name that does not resolve is said as a Session says.
    pub async fn addresses(s: &Settings) -> Result<Option<Arc<[SocketAddr]>>> {
        if s.proxy.is_some() || s.unix.is_some() {
            return Ok(None);
        }
        Ok(Some(super::resolve(s).await?.into()))
    }

    /// Connects to `addrs` (from `addresses`), within --connect-timeout.
    pub async fn open(s: &Settings, addrs: Option<&[SocketAddr]>) -> Result<(Held, Steps)> {
        let peer = transport::peer(s);
        match tokio::time::timeout(s.connect_timeout, open(s, addrs, peer.clone())).await {
            Ok(opened) => opened,
            Err(_) => Err(errors::connect_timeout(&peer, Some(s.connect_timeout))),
        }
    }

    /// Keeps the connection alive until `stop` resolves, then disconnects. As rumqttc does, a
    /// PINGREQ goes out each keepalive, and the connection counts as lost when the next one is
    /// due before anything came back. An error: the connection was lost first.
    /// Pinned by the caller, so that the held state does not store it twice.
    pub async fn hold(mut self, mut stop: Pin<&mut impl Future<Output = ()>>) -> Result<()> {
        let mut awaiting = false;
        let mut ping_at = (!self.keepalive.is_zero()).then(|| Instant::now() + self.keepalive);
        loop {
            tokio::select! {
                ev = self.next(true) => {
                    ev?;
                    awaiting = false;
                }
                _ = sleep_until(ping_at) => {
                    if awaiting {
                        return Err(errors::lost(&self.peer, "the broker stopped answering pings"));
                    }
                    self.write(&PINGREQ, true).await?;
                    awaiting = true;
                    ping_at = Some(Instant::now() + self.keepalive);
                }
                _ = stop.as_mut() => break,
            }
        }
        self.close().await;
        Ok(())
    }

    /// Writes whole packets (`publish_packet`'s) with one flush.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(bytes, true).await
    }

    pub async fn ping(&mut self) -> Result<()> {
        self.write(&PINGREQ, true).await
    }

    /// The next packet from the broker, as an event (a PINGRESP is `Event::Other`).
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Result<Event> {
        self.next(true).await
    }

    /// Sends DISCONNECT and closes; a broker that is gone by now changes nothing.
    pub async fn close(mut self) {
        let _ = self.write(&DISCONNECT, true).await;
        let _ = self.io.shutdown().await;
    }

    pub fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// How many QoS 1/2 PUBLISHes may be in flight at once: `inflight` (what was asked for,
    /// as a Session's window), lowered to the broker's Receive Maximum.
    pub fn window(&self, inflight: u16) -> u16 {
        self.receive_maximum.map_or(inflight, |r| r.min(inflight))
    }

    /// Whether a PUBLISH of `payload_len` bytes to `topic` fits the broker's Maximum Packet
    /// Size; the error is a Session's for a packet too large.
    pub fn fits_publish(&self, topic: &str, qos: Qos, payload_len: usize) -> Result<()> {
        let rest = publish_remaining(self.protocol, topic, qos, payload_len);
        let mut length = Vec::with_capacity(4);
        put_remaining_length(&mut length, rest);
        let size = 1 + length.len() + rest;
        match self.maximum_packet_size {
            Some(max) if size > max as usize => Err(errors::too_large(&self.peer, size, max)),
            _ => Ok(()),
        }
    }

    /// Appends a PUBLISH in this connection's protocol to `buf` (no properties under MQTT 5).
    /// `pkid` is ignored at QoS 0.
    pub fn publish_packet(
        &self,
        buf: &mut BytesMut,
        topic: &str,
        qos: Qos,
        retain: bool,
        pkid: u16,
        payload: &[u8],
    ) {
        publish_packet(buf, self.protocol, topic, qos, retain, pkid, payload)
    }

    /// Lets the kernel wake this connection's reader only once `bytes` have come in
    /// (SO_RCVLOWAT), rather than at each packet. Mosquitto writes each PUBACK on its own, so a
    /// publisher that reads them as they come wakes, reads and acknowledges at the TCP level
    /// once per few PUBACKs; one that can send again only when a burst's worth is back can have
    /// them all with one read. The caller must not ask for more than is sure to come (a
    /// PINGRESP, the last PUBACKs of a run): lowering it again wakes the reader at once if
    /// what is there is enough. Where the socket is not TCP dialled directly (a proxy, a Unix
    /// socket), or the system refuses, reads stay as they are.
    pub fn batch_reads(&mut self, bytes: usize) {
        let bytes = bytes.max(1);
        if bytes == self.lowat {
            return;
        }
        #[cfg(unix)]
        if let Some(fd) = self.tcp_fd {
            let value = bytes.min(i32::MAX as usize) as libc::c_int;
            // SAFETY: `fd` is the socket `io` owns, open for as long as `self`; SO_RCVLOWAT
            // reads a c_int of the size given.
            let set = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if set == 0 {
                self.lowat = bytes;
            }
        }
    }

    /// The next packet from the broker, as an event. Cancel-safe: what was read stays in `buf`.
    async fn next(&mut self, connected: bool) -> Result<Event> {
        if self.lowat > 1 {
            // Room for all that a batched read brings, not tokio's 64 bytes at a time.
            self.buf.reserve(BATCH_READ.max(2 * self.lowat));
        }
        loop {
            let parsed = match self.protocol {
                Protocol::V311 => v4::held_event(&mut self.buf, connected, &self.peer)?,
                Protocol::V5 => v5::held_event(&mut self.buf, connected, &self.peer)?,
            };
            if let Some(ev) = parsed {
                return Ok(ev);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) if connected => return Err(errors::lost(&self.peer, "the broker closed it")),
                Ok(0) => return Err(errors::closed_before_connack(&self.peer)),
                Ok(_) => {}
                Err(e) if connected => return Err(errors::lost(&self.peer, e)),
                Err(e) => return Err(errors::io_before_connack(&self.peer, &e)),
            }
        }
    }

    async fn write(&mut self, bytes: &[u8], connected: bool) -> Result<()> {
        let written = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        written.await.map_err(|e| match connected {
            true => errors::lost(&self.peer, e),
            false => errors::io_before_connack(&self.peer, &e),
        })
    }
}

async fn open(s: &Settings, addrs: Option<&[SocketAddr]>, peer: Peer) -> Result<(Held, Steps)> {
    let route = match (&s.unix, &s.proxy) {
        (Some(path), _) => Route::Unix(path.clone()),
        (None, Some(p)) if p.kind == ProxyKind::Http => Route::Http(p.clone()),
        (None, Some(p)) => Route::Socks5(p.clone()),
        (None, None) => Route::Direct,
    };
    let upstream = Upstream {
        host: s.host.clone(),
        port: s.port,
        route,
        mqtt31: false,
        source: s.source,
    };
    let t0 = Instant::now();
    #[cfg(unix)]
    let mut tcp_fd = None;
    let dialled = match (addrs, &upstream.route) {
        (Some(addrs), Route::Direct) => {
            relay::tcp_to(&s.host, addrs, s.source)
                .await
                .and_then(|tcp| {
                    tcp.set_nodelay(true)?;
                    #[cfg(unix)]
                    {
                        use std::os::fd::AsRawFd;
                        tcp_fd = Some(tcp.as_raw_fd());
                    }
                    Ok(Box::new(tcp) as Box<dyn Stream>)
                })
        }
        _ => relay::dial(&upstream).await,
    };
    let io = dialled.map_err(|e| errors::io_before_connack(&peer, &e))?;
    let tcp = t0.elapsed();
    let (io, tls) = match &s.tls {
        None => (io, None),
        Some(t) => {
            let t1 = Instant::now();
            let io = handshake(s, t, io, &peer).await?;
            (io, Some(t1.elapsed()))
        }
    };
    let mut connect = BytesMut::new();
    match s.protocol {
        Protocol::V311 => v4::connect_packet(s, &mut connect)?,
        Protocol::V5 => v5::connect_packet(s, &mut connect)?,
    }
    let mut held = Held {
        io,
        #[cfg(unix)]
        tcp_fd,
        lowat: 1,
        buf: BytesMut::new(),
        keepalive: s.keepalive,
        protocol: s.protocol,
        peer,
        receive_maximum: None,
        maximum_packet_size: None,
    };
    let t2 = Instant::now();
    held.write(&connect, false).await?;
    // Anything but a successful CONNACK first is an error (held_event).
    if let Event::ConnAck {
        limits: Some(limits),
        ..
    } = held.next(false).await?
    {
        // MQTT 5: the broker's Server Keep Alive replaces ours, as rumqttc adopts it.
        if let Some(secs) = limits.server_keep_alive {
            held.keepalive = Duration::from_secs(secs.into());
        }
        held.receive_maximum = limits.receive_maximum;
        held.maximum_packet_size = limits.maximum_packet_size;
    }
    let connack = t2.elapsed();
    // An idle connection needs no buffer until it reads again; but what came in behind the
    // CONNACK is the broker's next packet.
    if held.buf.is_empty() {
        held.buf = BytesMut::new();
    }
    Ok((held, Steps { tcp, tls, connack }))
}

/// A PUBLISH packet: fixed header, topic, packet id (QoS 1/2), MQTT 5's property length (no
/// properties), payload. Encoded here, not by rumqttc, so that a burst of them can be written
/// into one buffer without a `Publish` (and its topic `String`) made for each.
fn publish_packet(
    buf: &mut BytesMut,
    protocol: Protocol,
    topic: &str,
    qos: Qos,
    retain: bool,
    pkid: u16,
    payload: &[u8],
) {
    let len = publish_remaining(protocol, topic, qos, payload.len());
    buf.reserve(5 + len);
    buf.put_u8(0x30 | (qos as u8) << 1 | u8::from(retain));
    put_remaining_length(buf, len);
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if qos != Qos::AtMostOnce {
        buf.put_u16(pkid);
    }
    if protocol == Protocol::V5 {
        buf.put_u8(0);
    }
    buf.put_slice(payload);
}

/// A PUBLISH's remaining length as `publish_packet` writes it: topic, packet id (QoS 1/2),
/// MQTT 5's empty property list, payload.
fn publish_remaining(protocol: Protocol, topic: &str, qos: Qos, payload_len: usize) -> usize {
    let id = if qos == Qos::AtMostOnce { 0 } else { 2 };
    2 + topic.len() + id + usize::from(protocol == Protocol::V5) + payload_len
}

/// TLS over `io` as rumqttc's transport does it: SNI and verification for the host dialled,
/// or for --tls-server-name.
async fn handshake(
    s: &Settings,
    t: &TlsSettings,
    io: Box<dyn Stream>,
    peer: &Peer,
) -> Result<Box<dyn Stream>> {
    let name = t.server_name.clone().unwrap_or_else(|| s.host.clone());
    // The name is the one to verify: the ordinary verifier does it (as in transport.rs).
    let config = tls::client_config(&TlsSettings {
        server_name: None,
        ..t.clone()
    })?;
    let server_name = ServerName::try_from(name.clone()).map_err(|_| {
        errors::io_before_connack(
            peer,
            &std::io::Error::other(format!(
                "'{name}' is not a DNS name or IP address a TLS certificate can name"
            )),
        )
    })?;
    match TlsConnector::from(config).connect(server_name, io).await {
        Ok(stream) => Ok(Box::new(stream)),
        Err(e) => Err(errors::transport(peer, &e).unwrap_or_else(|| errors::tls_io(peer))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `publish_packet` encodes, rumqttc reads back as the same PUBLISH, under both
    /// versions, at each QoS, with a remaining length of one byte and of three.
    #[test]
    fn publish_packets_read_back_as_rumqttc_reads_them() {
        for len in [10, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for qos in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce] {
                for retain in [false, true] {
                    let mut buf = BytesMut::new();
                    publish_packet(&mut buf, Protocol::V311, "a/b", qos, retain, 7, &payload);
                    let rumqttc::Packet::Publish(p) =
                        rumqttc::Packet::read(&mut buf, 1 << 20).expect("a 3.1.1 PUBLISH")
                    else {
                        panic!("not a PUBLISH");
                    };
                    assert!(buf.is_empty(), "bytes left over");
                    assert_eq!(
                        (p.topic.as_str(), p.qos as u8, p.retain),
                        ("a/b", qos as u8, retain)
                    );
                    assert_eq!(p.pkid, if qos == Qos::AtMostOnce { 0 } else { 7 });
                    assert_eq!(&p.payload[..], &payload[..]);

                    let mut buf = BytesMut::new();
                    publish_packet(&mut buf, Protocol::V5, "a/b", qos, retain, 7, &payload);
                    use rumqttc::v5::mqttbytes::v5::Packet as P5;
                    let P5::Publish(p) =
                        P5::read(&mut buf, Some(1 << 20)).expect("an MQTT 5 PUBLISH")
                    else {
                        panic!("not a PUBLISH");
                    };
                    assert!(buf.is_empty(), "bytes left over");
                    assert_eq!(&p.topic[..], b"a/b");
                    assert_eq!((p.qos as u8, p.retain), (qos as u8, retain));
                    assert_eq!(p.pkid, if qos == Qos::AtMostOnce { 0 } else { 7 });
                    assert!(p.properties.is_none_or(|props| props == Default::default()));
                    assert_eq!(&p.payload[..], &payload[..]);
                }
            }
        }
    }

    /// `fits_publish` counts a PUBLISH's bytes as `publish_packet` writes them, against the
    /// broker's Maximum Packet Size, at the edges of the remaining length's encoding.
    #[test]
    fn publish_sizes_are_counted_as_encoded() {
        for protocol in [Protocol::V311, Protocol::V5] {
            for qos in [Qos::AtMostOnce, Qos::AtLeastOnce] {
                for len in [0, 100, 121, 122, 123, 16_370, 16_371, 16_380, 70_000] {
                    let mut buf = BytesMut::new();
                    publish_packet(&mut buf, protocol, "t/x", qos, false, 1, &vec![0; len]);
                    let size = buf.len() as u32;
                    let held = |max| Held {
                        maximum_packet_size: Some(max),
                        ..held_over(Box::new(tokio::io::duplex(64).0), protocol)
                    };
                    assert!(held(size).fits_publish("t/x", qos, len).is_ok(), "{len}");
                    assert!(
                        held(size - 1).fits_publish("t/x", qos, len).is_err(),
                        "{len}"
                    );
                }
            }
        }
    }

    /// A Held over `io`, as `open` leaves it, without a broker.
    fn held_over(io: Box<dyn Stream>, protocol: Protocol) -> Held {
        Held {
            io,
            #[cfg(unix)]
            tcp_fd: None,
            lowat: 1,
            buf: BytesMut::new(),
            keepalive: Duration::ZERO,
            protocol,
            peer: Peer {
                endpoint: "127.0.0.1:1883".into(),
                port: 1883,
                tls: false,
                mqtt5: protocol == Protocol::V5,
                mqtt31: false,
                unix: false,
                client_cert: false,
                proxy: None,
                relay: None,
            },
            receive_maximum: None,
            maximum_packet_size: None,
        }
    }

    /// Batched, a reader over TCP is not woken by one PUBACK when it asked for two, is by the
    /// second, and lowering the batch wakes it at once for what is already there.
    #[cfg(unix)]
    #[tokio::test]
    async fn batched_reads_wait_for_the_bytes_asked_for() {
        use std::os::fd::AsRawFd;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut broker, _) = listener.accept().await.unwrap();
        let fd = client.as_raw_fd();
        let mut held = Held {
            tcp_fd: Some(fd),
            ..held_over(Box::new(client), Protocol::V311)
        };
        let puback = |id: u8| [0x40, 2, 0, id];
        let quiet = Duration::from_millis(200);

        held.batch_reads(8);
        broker.write_all(&puback(1)).await.unwrap();
        assert!(
            tokio::time::timeout(quiet, held.recv()).await.is_err(),
            "woken by 4 bytes of the 8 asked for"
        );
        broker.write_all(&puback(2)).await.unwrap();
        for id in [1u8, 2] {
            let ev = tokio::time::timeout(Duration::from_secs(10), held.recv()).await;
            assert!(
                matches!(ev, Ok(Ok(Event::Acked { pkid })) if pkid == u16::from(id)),
                "PUBACK {id}: {ev:?}"
            );
        }

        broker.write_all(&puback(3)).await.unwrap();
        assert!(tokio::time::timeout(quiet, held.recv()).await.is_err());
        held.batch_reads(1);
        let ev = tokio::time::timeout(Duration::from_secs(10), held.recv()).await;
        assert!(matches!(ev, Ok(Ok(Event::Acked { pkid: 3 }))), "{ev:?}");
    }
}
