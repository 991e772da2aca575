use std::time::Duration;

use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt};
use tokio_stream::StreamExt;
use tokio_util::codec::Framed;

use crate::framed::{
    with_remaining_length, within, write_pieces, AsyncReadWrite, DIRECT_PAYLOAD, STALL_TIMEOUT,
};

use super::mqttbytes::v5::{Packet, Publish};
use super::{mqttbytes, Codec, Incoming, MqttState, StateError};

/// Network transforms packets <-> frames efficiently. It takes
/// advantage of pre-allocation, buffering and vectorization when
/// appropriate to achieve performance
pub struct Network {
    /// Frame MQTT packets from network connection
    framed: Framed<Box<dyn AsyncReadWrite>, Codec>,
    /// Maximum readv count
    max_readb_count: usize,
    /// mqttcli: see `crate::framed::Network::write_publish`.
    stall_timeout: Duration,
}
impl Network {
    pub fn new(socket: impl AsyncReadWrite + 'static, max_incoming_size: Option<u32>) -> Network {
        let socket = Box::new(socket) as Box<dyn AsyncReadWrite>;
        let codec = Codec {
            max_incoming_size,
            max_outgoing_size: None,
        };
        let framed = Framed::new(socket, codec);

        Network {
            framed,
            max_readb_count: 10,
            stall_timeout: STALL_TIMEOUT,
        }
    }

    /// mqttcli: see `crate::framed::Network::write_publish`.
    pub fn set_stall_timeout(&mut self, stall_timeout: Duration) {
        self.stall_timeout = stall_timeout;
    }

    pub fn set_max_outgoing_size(&mut self, max_outgoing_size: Option<u32>) {
        self.framed.codec_mut().max_outgoing_size = max_outgoing_size;
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

    pub async fn flush(&mut self) -> Result<(), StateError> {
        // mqttcli: within the stall timeout, as MQTT 3.1.1's event loop flushes within its
        // connection timeout; without one, a write to a stalled link waited forever.
        within(self.stall_timeout, self.framed.flush())
            .await?
            .map_err(StateError::Deserialization)
    }

    /// mqttcli: as `crate::framed::Network::write_publish` (MQTT 3.1.1), for MQTT 5.
    async fn write_publish(&mut self, mut publish: Publish) -> Result<(), StateError> {
        let size = publish.size();
        if let Some(max) = self.framed.codec().max_outgoing_size {
            if size > max as usize {
                return Err(StateError::Deserialization(
                    mqttbytes::Error::OutgoingPacketTooLarge {
                        pkt_size: size as u32,
                        max,
                    },
                ));
            }
        }
        let payload = std::mem::take(&mut publish.payload);
        let mut head = BytesMut::new();
        publish
            .write(&mut head)
            .map_err(StateError::Deserialization)?;
        let head = with_remaining_length(&head, payload.len()).ok_or(
            StateError::Deserialization(mqttbytes::Error::PayloadTooLong),
        )?;
        self.flush().await?;
        write_pieces(self.framed.get_mut(), &head, &payload, self.stall_timeout).await?;
        Ok(())
    }
}
