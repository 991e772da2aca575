//! MQTT 3.1.1 through rumqttc's v4 API.

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, EventLoop, LastWill, MqttOptions,
    NetworkOptions, Outgoing, Packet, StateError, SubscribeReasonCode,
};

use bytes::BytesMut;

use super::transport::{header_modifier, Peer, Wire};
use super::{errors, to_qos4, Ack, Event, Message, Qos, Reason, Settings, MAX_PACKET};

pub fn new(s: &Settings, wire: &Wire, cap: usize) -> (AsyncClient, EventLoop) {
    let mut opts = options(s, wire.broker.clone());
    opts.set_transport(wire.transport.clone());
    if let Some(proxy) = &wire.proxy {
        opts.set_proxy(proxy.clone());
    }
    if !wire.headers.is_empty() {
        opts.set_request_modifier(header_modifier(wire.headers.clone()));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, cap);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(s.connect_timeout.as_secs_f64().ceil() as u64);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// What rumqttc's CONNECT is made of, and its state's limits.
fn options(s: &Settings, broker: String) -> MqttOptions {
    let mut opts = MqttOptions::new(s.client_id.clone(), broker, s.port);
    opts.set_keep_alive(s.keepalive)
        .set_clean_session(s.clean_session)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    opts.set_manual_acks(s.manual_acks);
    if let Some(n) = s.inflight {
        opts.set_inflight(n);
    }
    if let Some(user) = &s.username {
        let pass = s.password.as_ref().map(|p| p.expose().to_string());
        opts.set_credentials(user.clone(), pass.unwrap_or_default());
    }
    if let Some(w) = &s.will {
        opts.set_last_will(LastWill::new(
            w.topic.clone(),
            w.payload.to_vec(),
            to_qos4(w.qos),
            w.retain,
        ));
    }
    opts
}

/// The CONNECT a Session would send for `s`, made as rumqttc's event loop makes it
/// (`mqtt_connect`), for a held connection (held.rs).
pub fn connect_packet(s: &Settings, buf: &mut BytesMut) -> anyhow::Result<()> {
    let o = options(s, s.host.clone());
    let mut connect = rumqttc::Connect::new(o.client_id());
    connect.keep_alive = o.keep_alive().as_secs() as u16;
    connect.clean_session = o.clean_session();
    connect.last_will = o.last_will();
    connect.login = o.credentials();
    connect
        .write(buf)
        .map_err(|e| anyhow::anyhow!("cannot encode the CONNECT: {e}"))?;
    Ok(())
}

/// The next whole packet in `buf` on a held connection, as an event; None until one is all
/// in. The failures are a Session's, in its words.
pub fn held_event(
    buf: &mut BytesMut,
    connected: bool,
    peer: &Peer,
) -> anyhow::Result<Option<Event>> {
    let before = buf.len();
    use rumqttc::mqttbytes::Error as Wire;
    match Packet::read(buf, MAX_PACKET) {
        // Short of a whole packet; once its frame was taken, short inside it: malformed.
        Err(Wire::InsufficientBytes(_)) if buf.len() == before => Ok(None),
        Err(e) => Err(error(
            ConnectionError::MqttState(StateError::Deserialization(e)),
            connected,
            peer,
        )),
        Ok(Packet::ConnAck(ack)) if ack.code != ConnectReturnCode::Success => Err(error(
            ConnectionError::ConnectionRefused(ack.code),
            false,
            peer,
        )),
        Ok(p) if !connected && !matches!(p, Packet::ConnAck(_)) => {
            Err(error(ConnectionError::NotConnAck(p), false, peer))
        }
        Ok(p) => Ok(Some(event(rumqttc::Event::Incoming(p)))),
    }
}

/// Marks every packet id as a QoS 2 message awaiting PUBREL (see `Events::poll`), through the
/// state machine's public entry point, leaving no event or packet behind.
pub fn expect_any_pubrel(el: &mut EventLoop) {
    let events = el.state.events.len();
    for pkid in 1..=u16::MAX {
        let mut p = rumqttc::Publish::new("x", rumqttc::QoS::ExactlyOnce, Vec::new());
        p.pkid = pkid;
        // Ok(PUBREC to send) or Ok(None): either way nothing is sent from here.
        let _ = el.state.handle_incoming_packet(Packet::Publish(p));
    }
    el.state.events.truncate(events);
}

/// Writes acknowledgements straight to the socket with one flush, behind rumqttc's back: its
/// event loop writes and flushes each request on its own, a system call and a TCP segment per
/// acknowledgement. Only for the tail of a burst whose head rumqttc has just written (see
/// `Events::poll`), so the order stays the order the messages arrived in.
pub async fn write_acks(el: &mut EventLoop, acks: &[Ack]) -> Result<(), StateError> {
    // No connection: the packet ids belonged to the one that was lost.
    let Some(network) = el.network.as_mut() else {
        return Ok(());
    };
    for ack in acks {
        let packet = match ack.qos {
            Qos::AtLeastOnce => Packet::PubAck(rumqttc::PubAck::new(ack.pkid)),
            Qos::ExactlyOnce => Packet::PubRec(rumqttc::PubRec::new(ack.pkid)),
            Qos::AtMostOnce => continue,
        };
        network.write(packet).await?;
    }
    network.flush().await
}

/// The packet id of an acknowledgement rumqttc has just written for us.
pub fn ack_written(ev: &rumqttc::Event) -> Option<u16> {
    match ev {
        rumqttc::Event::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid)) => Some(*pkid),
        _ => None,
    }
}

pub fn event(ev: rumqttc::Event) -> Event {
    match ev {
        rumqttc::Event::Incoming(Packet::Publish(p)) => Event::Message(Message {
            topic: p.topic,
            payload: p.payload,
            qos: Qos::from_number(p.qos as u8),
            retain: p.retain,
            properties: None,
            ack: Ack::of(p.pkid, Qos::from_number(p.qos as u8)),
        }),
        rumqttc::Event::Incoming(Packet::ConnAck(ack)) => Event::ConnAck {
            session_present: ack.session_present,
            limits: None,
        },
        rumqttc::Event::Incoming(Packet::PubAck(ack)) => Event::Acked { pkid: ack.pkid },
        rumqttc::Event::Incoming(Packet::PubComp(comp)) => Event::Acked { pkid: comp.pkid },
        rumqttc::Event::Incoming(Packet::SubAck(ack)) => Event::SubAck(
            ack.return_codes
                .into_iter()
                .map(|c| match c {
                    SubscribeReasonCode::Success(q) => Ok(Qos::from_number(q as u8)),
                    SubscribeReasonCode::Failure => Err(Reason::new(0x80, "refused by the broker")),
                })
                .collect(),
        ),
        rumqttc::Event::Incoming(Packet::UnsubAck(_)) => Event::UnsubAck(vec![Ok(())]),
        rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => Event::Written { pkid },
        rumqttc::Event::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

fn connack_words(code: ConnectReturnCode) -> (&'static str, u8) {
    match code {
        ConnectReturnCode::Success => ("success", 0),
        ConnectReturnCode::RefusedProtocolVersion => ("unacceptable protocol version", 1),
        ConnectReturnCode::BadClientId => ("client identifier rejected", 2),
        ConnectReturnCode::ServiceUnavailable => ("server unavailable", 3),
        ConnectReturnCode::BadUserNamePassword => ("bad username or password", 4),
        ConnectReturnCode::NotAuthorized => ("not authorised", 5),
    }
}

pub fn error(e: ConnectionError, connected: bool, peer: &Peer) -> anyhow::Error {
    use rumqttc::mqttbytes::Error as Wire;
    tracing::debug!(error = ?e, connected, "connection error");
    if let Some(err) = errors::transport(peer, &e) {
        return err;
    }
    match e {
        ConnectionError::Tls(_) => errors::tls_io(peer),
        ConnectionError::Proxy(p) => errors::proxy(peer, &p),
        ConnectionError::ResponseValidation(_) => errors::not_mqtt_websocket(peer),
        ConnectionError::WsConnect(w) => errors::websocket(peer, w),
        ConnectionError::InvalidUrl(u) => errors::websocket(peer, u),
        ConnectionError::Websocket(w) if !connected => errors::websocket(peer, w),
        ConnectionError::ConnectionRefused(code) => {
            let (words, n) = connack_words(code);
            errors::refused(peer, words, n)
        }
        ConnectionError::MqttState(StateError::Deserialization(
            Wire::InvalidConnectReturnCode(n),
        )) => errors::refused(peer, "unknown reason", n),
        ConnectionError::MqttState(StateError::Deserialization(Wire::OutgoingPacketTooLarge {
            pkt_size,
            max,
        })) => errors::too_large(peer, pkt_size, max),
        ConnectionError::MqttState(StateError::Deserialization(
            Wire::PayloadSizeLimitExceeded(n),
        )) => errors::too_large(peer, n, MAX_PACKET),
        ConnectionError::NetworkTimeout if !connected => errors::connect_timeout(peer, None),
        ConnectionError::NotConnAck(_) => errors::not_mqtt(peer),
        ConnectionError::Io(io) if !connected => errors::io_before_connack(peer, &io),
        ConnectionError::MqttState(StateError::Deserialization(Wire::Io(io))) if !connected => {
            errors::io_before_connack(peer, &io)
        }
        ConnectionError::MqttState(StateError::ConnectionAborted) if !connected => {
            errors::closed_before_connack(peer)
        }
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            errors::lost(peer, "the broker closed it")
        }
        ConnectionError::MqttState(StateError::AwaitPingResp) => {
            errors::lost(peer, "the broker stopped answering pings")
        }
        ConnectionError::MqttState(StateError::Io(io)) if errors::is_write_stall(&io) => {
            errors::write_timed_out(peer)
        }
        ConnectionError::MqttState(StateError::Deserialization(Wire::Io(io)))
        | ConnectionError::MqttState(StateError::Io(io))
        | ConnectionError::Io(io) => errors::lost(peer, io),
        ConnectionError::FlushTimeout => errors::write_timed_out(peer),
        other if connected => errors::lost(peer, other),
        other => errors::io_before_connack(peer, &std::io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_connection_refused_is_said_in_words() {
        let peer = Peer::for_tests(false, false, false);
        let mut buf = BytesMut::from(&[0x20, 2, 0, 5][..]);
        let e = held_event(&mut buf, false, &peer).unwrap_err().to_string();
        assert_eq!(
            e,
            "the broker at broker:1883 refused the connection: not authorised (CONNACK code 5): check the username and password (-u with -P, --password-file or MQTT_PASSWORD) and the broker's access rules"
        );
        // Anything else first is not an MQTT broker's answer.
        let mut buf = BytesMut::from(&[0xD0, 0][..]);
        let e = held_event(&mut buf, false, &peer).unwrap_err().to_string();
        assert!(e.contains("did not answer with an MQTT CONNACK"), "{e}");
    }
}
