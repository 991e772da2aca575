use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Framed;

use crate::mqttbytes::{self, v4::*};
use crate::{Incoming, MqttState, StateError};

/// Network transforms packets <-> frames efficiently. It takes
/// advantage of pre-allocation, buffering and vectorization when
/// appropriate to achieve performance
pub struct Network {
    /// Frame MQTT packets from network connection
    framed: Framed<Box<dyn AsyncReadWrite>, Codec>,
    /// Maximum readv count
    max_readb_count: usize,
    /// mqttcli: how long a write of a large payload may go without progress (`write_publish`).
    stall_timeout: Duration,
}

impl Network {
    pub fn new(
        socket: impl AsyncReadWrite + 'static,
        max_incoming_size: usize,
        max_outgoing_size: usize,
    ) -> Network {
        let socket = Box::new(socket) as Box<dyn AsyncReadWrite>;
        let codec = Codec {
            max_incoming_size,
            max_outgoing_size,
        };
        let framed = Framed::new(socket, codec);

        Network {
            framed,
            max_readb_count: 10,
            stall_timeout: STALL_TIMEOUT,
        }
    }

    /// mqttcli: see `write_publish`.
    pub fn set_stall_timeout(&mut self, stall_timeout: Duration) {
        self.stall_timeout = stall_timeout;
    }

    /// Reads and returns a single packet from network
    pub async fn read(&mut self) -> Result<Incoming, StateError> {
        match self.framed.next().await {
            Some(Ok(packet)) => Ok(packet),
            Some(Err(mqttbytes::Error::InsufficientBytes(_))) => unreachable!(),
            Some(Err(e)) => Err(StateError::Deserialization(e)),
            None => Err(StateError::ConnectionAborted),
        }
    }

    /// Read packets in bulk. This allow replies to be in bulk. This method is used
    /// after the connection is established to read a bunch of incoming packets
    pub async fn readb(&mut self, state: &mut MqttState) -> Result<(), StateError> {
        // wait for the first read
        let mut res = self.framed.next().await;
        let mut count = 1;
        loop {
            match res {
                Some(Ok(packet)) => {
                    if let Some(outgoing) = state.handle_incoming_packet(packet)? {
                        self.write(outgoing).await?;
                    }

                    count += 1;
                    if count >= self.max_readb_count {
                        break;
                    }
                }
                Some(Err(mqttbytes::Error::InsufficientBytes(_))) => unreachable!(),
                Some(Err(e)) => return Err(StateError::Deserialization(e)),
                None => return Err(StateError::ConnectionAborted),
            }
            // do not wait for subsequent reads
            match self.framed.next().now_or_never() {
                Some(r) => res = r,
                _ => break,
            };
        }

        Ok(())
    }

    /// Serializes packet into write buffer
    pub async fn write(&mut self, packet: Packet) -> Result<(), StateError> {
        // mqttcli: see `write_publish`.
        let packet = match packet {
            Packet::Publish(p) if p.payload.len() >= DIRECT_PAYLOAD => {
                return self.write_publish(p).await
            }
            packet => packet,
        };
        self.framed
            .feed(packet)
            .await
            .map_err(StateError::Deserialization)
    }

    pub async fn flush(&mut self) -> Result<(), crate::state::StateError> {
        self.framed
            .flush()
            .await
            .map_err(StateError::Deserialization)
    }

    /// mqttcli: writes a PUBLISH whose payload is large from the payload's own buffer, after
    /// what is already buffered. Copied into the write buffer, as `feed` does, a payload was
    /// held twice until written (a 256 MB payload took 512 MB), and the event loop's flush
    /// timeout applied to the whole packet, so a payload that takes longer than that to cross
    /// a slow link failed (80 MB at 40 Mbit/s, with 10 s). Here the payload goes out in pieces,
    /// and only a piece that makes no progress for the stall timeout fails.
    async fn write_publish(&mut self, mut publish: Publish) -> Result<(), StateError> {
        let size = publish.size();
        let max = self.framed.codec().max_outgoing_size;
        if size > max {
            return Err(StateError::Deserialization(
                mqttbytes::Error::OutgoingPacketTooLarge {
                    pkt_size: size,
                    max,
                },
            ));
        }
        let payload = std::mem::take(&mut publish.payload);
        let mut head = BytesMut::new();
        publish
            .write(&mut head)
            .map_err(StateError::Deserialization)?;
        let head = with_remaining_length(&head, payload.len()).ok_or(
            StateError::Deserialization(mqttbytes::Error::PayloadTooLong),
        )?;
        let stall = self.stall_timeout;
        within(stall, self.framed.flush())
            .await?
            .map_err(StateError::Deserialization)?;
        write_pieces(self.framed.get_mut(), &head, &payload, stall).await?;
        Ok(())
    }
}

/// mqttcli: a PUBLISH payload of at least this many bytes is written by `write_publish`.
pub(crate) const DIRECT_PAYLOAD: usize = 64 * 1024;
/// mqttcli: the largest write of `write_pieces`: small enough to make progress within the
/// stall timeout on a slow link (16 KiB in 10 s is 1.6 KB/s).
const PIECE: usize = 16 * 1024;
/// mqttcli: rumqttc's default connection timeout, for a Network the event loop did not set up.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// mqttcli: `head` is a packet encoded without its last `extra` bytes (a PUBLISH without its
/// payload); the same with a remaining length that counts them. None past MQTT's largest
/// remaining length.
pub(crate) fn with_remaining_length(head: &[u8], extra: usize) -> Option<BytesMut> {
    let (len_len, len) = mqttbytes::length(head.get(1..)?.iter()).ok()?;
    let mut out = BytesMut::with_capacity(head.len() + 4);
    out.put_u8(head[0]);
    mqttbytes::write_remaining_length(&mut out, len.checked_add(extra)?).ok()?;
    out.extend_from_slice(&head[1 + len_len..]);
    Some(out)
}

/// mqttcli: `head`, then `payload` in pieces, each of which must be written within `stall`.
pub(crate) async fn write_pieces(
    io: &mut Box<dyn AsyncReadWrite>,
    head: &[u8],
    payload: &[u8],
    stall: Duration,
) -> io::Result<()> {
    for piece in std::iter::once(head).chain(payload.chunks(PIECE)) {
        within(stall, io.write_all(piece)).await??;
    }
    Ok(())
}

/// mqttcli: `f` within `stall`, or an error of kind `TimedOut`.
pub(crate) async fn within<T>(
    stall: Duration,
    f: impl std::future::Future<Output = T>,
) -> io::Result<T> {
    tokio::time::timeout(stall, f).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "writing to the socket made no progress",
        )
    })
}

pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T> AsyncReadWrite for T where T: AsyncRead + AsyncWrite + Send + Unpin {}
