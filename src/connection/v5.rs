//! MQTT 5.0 through rumqttc's v5 API.

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{
    ConnAckProperties, Connect, ConnectProperties, ConnectReturnCode, Filter, LastWill,
    LastWillProperties, Packet, PubAckReason, PubCompReason, PubRecReason, PublishProperties,
    RetainForwardRule, SubscribeProperties, SubscribeReasonCode, UnsubAckReason,
};
use rumqttc::v5::mqttbytes::Error as WireError;
use rumqttc::v5::{AsyncClient, ConnectionError, EventLoop, MqttOptions, StateError};
use rumqttc::{NetworkOptions, Outgoing};

use super::settings::DEFAULT_INFLIGHT;
use super::transport::{header_modifier, Peer, Wire};
use super::{
    errors, to_qos5, Ack, BrokerLimits, Event, Message, Properties, Qos, Reason, RetainHandling,
    Settings, Subscription,
};

/// The largest Maximum Packet Size MQTT 5 allows in CONNECT (2^28 - 1): what mqttcli sends
/// when no `-D CONNECT maximum-packet-size` is given.
pub const MAX_PACKET_SIZE_PROPERTY: u32 = 268_435_455;

pub fn new(s: &Settings, wire: &Wire, cap: usize) -> (AsyncClient, EventLoop) {
    let mut opts = options(s, wire.broker.clone());
    opts.set_transport(wire.transport.clone());
    if let Some(proxy) = &wire.proxy {
        opts.set_proxy(proxy.clone());
    }
    if !wire.headers.is_empty() {
        opts.set_request_modifier(header_modifier(wire.headers.clone()));
    }
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    AsyncClient::new(opts, cap)
}

/// What rumqttc's CONNECT is made of, and its state's limits.
fn options(s: &Settings, broker: String) -> MqttOptions {
    let mut opts = MqttOptions::new(s.client_id.clone(), broker, s.port);
    let c = &s.connect_properties;
    opts.set_keep_alive(s.keepalive)
        .set_clean_start(s.clean_session)
        .set_connection_timeout(s.connect_timeout.as_secs_f64().ceil() as u64)
        .set_connect_properties(ConnectProperties {
            session_expiry_interval: s.session_expiry,
            receive_maximum: c.receive_maximum,
            // rumqttc reads an absent Maximum Packet Size as a 10 KiB limit on what it
            // receives (its default_max_incoming_size has no setter), so "no limit" is sent as
            // the largest value MQTT allows: larger ones make strict brokers hang up.
            max_packet_size: Some(c.maximum_packet_size.unwrap_or(MAX_PACKET_SIZE_PROPERTY)),
            topic_alias_max: c.topic_alias_maximum,
            request_response_info: c.request_response_information,
            request_problem_info: c.request_problem_information,
            user_properties: c.user_properties.clone(),
            authentication_method: c.authentication_method.clone(),
            authentication_data: c.authentication_data.clone(),
        });
    opts.set_manual_acks(s.manual_acks);
    opts.set_outgoing_inflight_upper_limit(s.inflight.unwrap_or(DEFAULT_INFLIGHT));
    if let Some(user) = &s.username {
        let pass = s.password.as_ref().map(|p| p.expose().to_string());
        opts.set_credentials(user.clone(), pass.unwrap_or_default());
    }
    if let Some(w) = &s.will {
        let p = &w.properties;
        let properties = (w.delay_interval.is_some() || *p != Properties::default()).then(|| {
            LastWillProperties {
                delay_interval: w.delay_interval,
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                content_type: p.content_type.clone(),
                response_topic: p.response_topic.clone(),
                correlation_data: p.correlation_data.clone(),
                user_properties: p.user_properties.clone(),
            }
        });
        opts.set_last_will(LastWill::new(
            w.topic.clone(),
            w.payload.to_vec(),
            to_qos5(w.qos),
            w.retain,
            properties,
        ));
    }
    opts
}

/// The CONNECT a Session would send for `s`, made as rumqttc's event loop makes it
/// (`mqtt_connect`), for a held connection (held.rs).
pub fn connect_packet(s: &Settings, buf: &mut BytesMut) -> anyhow::Result<()> {
    let o = options(s, s.host.clone());
    let connect = Connect {
        client_id: o.client_id(),
        keep_alive: o.keep_alive().as_secs() as u16,
        clean_start: o.clean_start(),
        properties: o.connect_properties(),
    };
    connect
        .write(&o.last_will(), &o.credentials(), buf)
        .map_err(|e| anyhow::anyhow!("cannot encode the CONNECT: {e}"))?;
    Ok(())
}

/// The next whole packet in `buf` on a held connection, as an event; None until one is all
/// in. The failures, and a DISCONNECT from the broker, are a Session's, in its words.
pub fn held_event(
    buf: &mut BytesMut,
    connected: bool,
    peer: &Peer,
) -> anyhow::Result<Option<Event>> {
    let before = buf.len();
    match Packet::read(buf, Some(MAX_PACKET_SIZE_PROPERTY)) {
        // Short of a whole packet; once its frame was taken, short inside it: malformed.
        Err(WireError::InsufficientBytes(_)) if buf.len() == before => Ok(None),
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
            Err(error(ConnectionError::NotConnAck(Box::new(p)), false, peer))
        }
        Ok(Packet::Disconnect(d)) => Err(error(
            ConnectionError::MqttState(StateError::ServerDisconnect {
                reason_code: d.reason_code,
                reason_string: d.properties.and_then(|p| p.reason_string),
            }),
            true,
            peer,
        )),
        Ok(p) => Ok(Some(event(rumqttc::v5::Event::Incoming(p)))),
    }
}

fn properties(p: Option<PublishProperties>) -> Properties {
    let p = p.unwrap_or_default();
    Properties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: p.subscription_identifiers,
        topic_alias: None,
    }
}

pub fn filter(s: &Subscription) -> Filter {
    Filter {
        path: s.filter.clone(),
        qos: to_qos5(s.qos),
        nolocal: s.no_local,
        preserve_retain: s.retain_as_published,
        retain_forward_rule: match s.retain_handling {
            RetainHandling::Always => RetainForwardRule::OnEverySubscribe,
            RetainHandling::New => RetainForwardRule::OnNewSubscribe,
            RetainHandling::Never => RetainForwardRule::Never,
        },
    }
}

pub fn subscribe_properties(p: &crate::connection::SubscribeProperties) -> SubscribeProperties {
    SubscribeProperties {
        id: p.identifier.map(|n| n as usize),
        user_properties: p.user_properties.clone(),
    }
}

pub fn publish_properties(p: Properties) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        topic_alias: p.topic_alias,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: p.subscription_identifiers,
        content_type: p.content_type,
    }
}

fn limits(p: ConnAckProperties) -> BrokerLimits {
    let flag = |v: Option<u8>| v.map(|v| v != 0);
    BrokerLimits {
        receive_maximum: p.receive_max,
        maximum_packet_size: p.max_packet_size,
        maximum_qos: p.max_qos,
        retain_available: flag(p.retain_available),
        wildcard_subscriptions: flag(p.wildcard_subscription_available),
        shared_subscriptions: flag(p.shared_subscription_available),
        subscription_identifiers: flag(p.subscription_identifiers_available),
        topic_alias_maximum: p.topic_alias_max,
        server_keep_alive: p.server_keep_alive,
        session_expiry_interval: p.session_expiry_interval,
        assigned_client_id: p.assigned_client_identifier,
    }
}

/// Marks every packet id as a QoS 2 message awaiting PUBREL (see `Events::poll`), through the
/// state machine's public entry point, leaving no event or packet behind.
pub fn expect_any_pubrel(el: &mut EventLoop) {
    use rumqttc::v5::mqttbytes::v5::Publish;
    use rumqttc::v5::mqttbytes::QoS;
    let events = el.state.events.len();
    for pkid in 1..=u16::MAX {
        let mut p = Publish::new("x", QoS::ExactlyOnce, Vec::new(), None);
        p.pkid = pkid;
        let _ = el.state.handle_incoming_packet(Packet::Publish(p));
    }
    el.state.events.truncate(events);
}

pub fn event(ev: rumqttc::v5::Event) -> Event {
    use rumqttc::v5::Event as E;
    match ev {
        E::Incoming(Packet::Publish(p)) => Event::Message(Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload,
            qos: Qos::from_number(p.qos as u8),
            retain: p.retain,
            properties: Some(properties(p.properties)),
            ack: Ack::of(p.pkid, Qos::from_number(p.qos as u8)),
        }),
        E::Incoming(Packet::ConnAck(ack)) => Event::ConnAck {
            session_present: ack.session_present,
            limits: Some(ack.properties.map(limits).unwrap_or_default()),
        },
        E::Incoming(Packet::PubAck(ack)) => match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                Event::Acked { pkid: ack.pkid }
            }
            reason => {
                let (string, users) =
                    told(ack.properties.map(|p| (p.reason_string, p.user_properties)));
                Event::PublishRefused {
                    pkid: ack.pkid,
                    reason: reason_words(&format!("{reason:?}"), puback_code(reason))
                        .with(string.clone(), users.clone()),
                }
            }
        },
        E::Incoming(Packet::PubRec(rec)) => match rec.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Event::Other,
            reason => {
                let (string, users) =
                    told(rec.properties.map(|p| (p.reason_string, p.user_properties)));
                Event::PublishRefused {
                    pkid: rec.pkid,
                    reason: reason_words(&format!("{reason:?}"), pubrec_code(reason))
                        .with(string.clone(), users.clone()),
                }
            }
        },
        E::Incoming(Packet::PubComp(comp)) => match comp.reason {
            PubCompReason::Success => Event::Acked { pkid: comp.pkid },
            PubCompReason::PacketIdentifierNotFound => Event::PublishRefused {
                pkid: comp.pkid,
                reason: reason_words("PacketIdentifierNotFound", 0x92),
            },
        },
        E::Incoming(Packet::SubAck(ack)) => {
            // One reason string per packet: it goes with every refusal in it.
            let (string, users) =
                told(ack.properties.map(|p| (p.reason_string, p.user_properties)));
            Event::SubAck(
                ack.return_codes
                    .into_iter()
                    .map(|c| match c {
                        SubscribeReasonCode::Success(q) => Ok(Qos::from_number(q as u8)),
                        other => Err(reason_words(&format!("{other:?}"), suback_code(other))
                            .with(string.clone(), users.clone())),
                    })
                    .collect(),
            )
        }
        E::Incoming(Packet::UnsubAck(ack)) => {
            let (string, users) =
                told(ack.properties.map(|p| (p.reason_string, p.user_properties)));
            Event::UnsubAck(
                ack.reasons
                    .into_iter()
                    .map(|r| match r {
                        UnsubAckReason::Success => Ok(()),
                        other => Err(reason_words(&format!("{other:?}"), unsuback_code(other))
                            .with(string.clone(), users.clone())),
                    })
                    .collect(),
            )
        }
        E::Outgoing(Outgoing::Publish(pkid)) => Event::Written { pkid },
        E::Outgoing(Outgoing::Disconnect) => Event::DisconnectSent,
        _ => Event::Other,
    }
}

/// What an ack adds to its reason code: a reason string and user properties.
type Told = (Option<String>, Vec<(String, String)>);

/// An ack's reason string and user properties, if it had properties.
fn told(p: Option<Told>) -> Told {
    p.unwrap_or_default()
}

/// `NotAuthorized` → "not authorized (0x87)": rumqttc's variant names, spaced and lower-cased.
fn reason_words(variant: &str, code: u8) -> Reason {
    let mut words = String::new();
    for (i, ch) in variant.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(ch.to_ascii_lowercase());
    }
    let words = words
        .replace("qo s", "QoS")
        .replace("user name", "username");
    Reason::new(code, words)
}

fn puback_code(r: PubAckReason) -> u8 {
    match r {
        PubAckReason::Success => 0x00,
        PubAckReason::NoMatchingSubscribers => 0x10,
        PubAckReason::UnspecifiedError => 0x80,
        PubAckReason::ImplementationSpecificError => 0x83,
        PubAckReason::NotAuthorized => 0x87,
        PubAckReason::TopicNameInvalid => 0x90,
        PubAckReason::PacketIdentifierInUse => 0x91,
        PubAckReason::QuotaExceeded => 0x97,
        PubAckReason::PayloadFormatInvalid => 0x99,
    }
}

fn pubrec_code(r: PubRecReason) -> u8 {
    match r {
        PubRecReason::Success => 0x00,
        PubRecReason::NoMatchingSubscribers => 0x10,
        PubRecReason::UnspecifiedError => 0x80,
        PubRecReason::ImplementationSpecificError => 0x83,
        PubRecReason::NotAuthorized => 0x87,
        PubRecReason::TopicNameInvalid => 0x90,
        PubRecReason::PacketIdentifierInUse => 0x91,
        PubRecReason::QuotaExceeded => 0x97,
        PubRecReason::PayloadFormatInvalid => 0x99,
    }
}

fn suback_code(r: SubscribeReasonCode) -> u8 {
    match r {
        SubscribeReasonCode::Success(q) => q as u8,
        SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
        SubscribeReasonCode::ImplementationSpecific => 0x83,
        SubscribeReasonCode::NotAuthorized => 0x87,
        SubscribeReasonCode::TopicFilterInvalid => 0x8F,
        SubscribeReasonCode::PkidInUse => 0x91,
        SubscribeReasonCode::QuotaExceeded => 0x97,
        SubscribeReasonCode::SharedSubscriptionsNotSupported => 0x9E,
        SubscribeReasonCode::SubscriptionIdNotSupported => 0xA1,
        SubscribeReasonCode::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn unsuback_code(r: UnsubAckReason) -> u8 {
    match r {
        UnsubAckReason::Success => 0x00,
        UnsubAckReason::NoSubscriptionExisted => 0x11,
        UnsubAckReason::UnspecifiedError => 0x80,
        UnsubAckReason::ImplementationSpecificError => 0x83,
        UnsubAckReason::NotAuthorized => 0x87,
        UnsubAckReason::TopicFilterInvalid => 0x8F,
        UnsubAckReason::PacketIdentifierInUse => 0x91,
    }
}

fn connack_code(c: ConnectReturnCode) -> u8 {
    use ConnectReturnCode as C;
    match c {
        C::Success => 0x00,
        C::RefusedProtocolVersion => 0x01,
        C::BadClientId => 0x02,
        C::ServiceUnavailable => 0x03,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::UnsupportedProtocolVersion => 0x84,
        C::ClientIdentifierNotValid => 0x85,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerUnavailable => 0x88,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}

pub fn error(e: ConnectionError, connected: bool, peer: &Peer) -> anyhow::Error {
    tracing::debug!(error = ?e, connected, "connection error");
    if let Some(err) = errors::transport(peer, &e) {
        return err;
    }
    // v5's StateError::Deserialization does not expose its cause as a source(): look inside.
    if let ConnectionError::MqttState(StateError::Deserialization(WireError::Io(io))) = &e {
        if let Some(err) = errors::transport(peer, io) {
            return err;
        }
    }
    match e {
        ConnectionError::Tls(_) => errors::tls_io(peer),
        ConnectionError::Proxy(p) => errors::proxy(peer, &p),
        ConnectionError::ResponseValidation(_) => errors::not_mqtt_websocket(peer),
        ConnectionError::WsConnect(w) => errors::websocket(peer, w),
        ConnectionError::InvalidUrl(u) => errors::websocket(peer, u),
        ConnectionError::Websocket(w) if !connected => errors::websocket(peer, w),
        ConnectionError::ConnectionRefused(code) => {
            let reason = reason_words(&format!("{code:?}"), connack_code(code));
            errors::refused(peer, &reason.words, reason.code)
        }
        // After CONNACK the same parse error means an ack (PUBACK, PUBREC, ...) or DISCONNECT
        // carried a reason code rumqttc does not know for that packet: Mosquitto answers an
        // oversized QoS 1/2 PUBLISH with PUBACK 0x95.
        ConnectionError::MqttState(StateError::Deserialization(WireError::InvalidConnectReturnCode(n))) if connected => {
            let what = match n {
                0x95 => "packet too large (0x95): the message is larger than the broker accepts (its max_packet_size or message_size_limit)".to_string(),
                _ => format!("reason code 0x{n:02x}, which this client cannot read"),
            };
            crate::exit::fail(
                crate::exit::Exit::Rejected,
                format!("the broker at {} refused the request: {what}", peer.endpoint),
            )
        }
        // A 3.1.1-only broker answers a v5 CONNECT with a v3 code this parser does not know.
        ConnectionError::MqttState(StateError::Deserialization(WireError::InvalidConnectReturnCode(n))) => {
            crate::exit::fail(
                crate::exit::Exit::ConnectRefused,
                format!(
                    "the broker at {} refused MQTT 5 (CONNACK code {n}): it may speak only MQTT 3.1.1: use -V 311",
                    peer.endpoint
                ),
            )
        }
        ConnectionError::MqttState(StateError::InvalidAlias { alias, max }) => crate::exit::fail(
            crate::exit::Exit::Rejected,
            format!(
                "topic alias {alias} is above the Topic Alias Maximum of {max} that the broker at {} allows",
                peer.endpoint
            ),
        ),
        ConnectionError::MqttState(StateError::OutgoingPacketTooLarge { pkt_size, max }) => {
            errors::too_large(peer, pkt_size, max)
        }
        ConnectionError::MqttState(StateError::Deserialization(WireError::OutgoingPacketTooLarge {
            pkt_size,
            max,
        })) => errors::too_large(peer, pkt_size as usize, max as usize),
        ConnectionError::MqttState(StateError::Deserialization(WireError::PayloadSizeLimitExceeded {
            pkt_size,
            max,
        })) => errors::too_large(peer, pkt_size, max),
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            let reason = reason_words(&format!("{reason_code:?}"), reason_code as u8)
                .with(reason_string, Vec::new());
            errors::server_disconnect(peer, &reason)
        }
        ConnectionError::Timeout(_) if !connected => errors::connect_timeout(peer, None),
        ConnectionError::NotConnAck(_) => errors::not_mqtt(peer),
        ConnectionError::Io(io) if !connected => errors::io_before_connack(peer, &io),
        ConnectionError::MqttState(StateError::Deserialization(WireError::Io(io))) if !connected => {
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
        ConnectionError::MqttState(StateError::Deserialization(WireError::Io(io)))
        | ConnectionError::MqttState(StateError::Io(io))
        | ConnectionError::Io(io) => errors::lost(peer, io),
        other if connected => errors::lost(peer, other),
        other => errors::io_before_connack(peer, &std::io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;

    #[test]
    fn reasons_read_as_words() {
        let words = |variant, code| reason_words(variant, code).to_string();
        assert_eq!(words("NotAuthorized", 0x87), "not authorized (0x87)");
        assert_eq!(
            words("NoSubscriptionExisted", 0x11),
            "no subscription existed (0x11)"
        );
        assert_eq!(words("QoSNotSupported", 0x9B), "QoS not supported (0x9b)");
    }

    /// MQTT 5 lets a DISCONNECT leave out its property length, or everything after its fixed
    /// header (3.14.2.1); Mosquitto sends the first. rumqttc 0.25.1 read neither: the copy in
    /// vendor/rumqttc does (vendor/rumqttc/PATCHED.md).
    #[test]
    fn short_disconnects_are_read_with_their_reason() {
        for (bytes, code) in [
            (&[0xE0, 1, 0x8E][..], DisconnectReasonCode::SessionTakenOver),
            (&[0xE0, 0], DisconnectReasonCode::NormalDisconnection),
            (
                &[0xE0, 2, 0x8B, 0],
                DisconnectReasonCode::ServerShuttingDown,
            ),
        ] {
            let mut buf = BytesMut::from(bytes);
            match Packet::read(&mut buf, None) {
                Ok(Packet::Disconnect(d)) => {
                    assert_eq!((d.reason_code, d.properties), (code, None), "{bytes:02x?}");
                }
                other => panic!("{bytes:02x?}: {other:?}"),
            }
            assert!(buf.is_empty(), "{bytes:02x?}: the packet is read whole");
        }
    }

    #[test]
    fn a_held_connection_reads_every_form_of_disconnect() {
        let peer = Peer::for_tests(true, false, false);
        for (bytes, words) in [
            (&[0xE0, 2, 0x8B, 0][..], "server shutting down (0x8b)"),
            (&[0xE0, 1, 0x8B], "server shutting down (0x8b)"),
            (&[0xE0, 0], "normal disconnection (0x00)"),
        ] {
            let mut buf = BytesMut::from(bytes);
            let e = held_event(&mut buf, true, &peer).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("the broker at broker:1883 ended the connection: {words}"),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn a_held_connection_waits_for_the_rest_of_a_packet() {
        let peer = Peer::for_tests(true, false, false);
        for (first, rest) in [(&[0xD0][..], &[0][..]), (&[0xE0, 1], &[0x8B])] {
            let mut buf = BytesMut::from(first);
            assert!(held_event(&mut buf, true, &peer).unwrap().is_none());
            assert_eq!(&buf[..], first, "what was read is kept");
            buf.extend_from_slice(rest);
            let whole = held_event(&mut buf, true, &peer);
            assert!(buf.is_empty(), "{first:02x?}: consumed");
            match first[0] {
                0xD0 => assert!(matches!(whole, Ok(Some(Event::Other)))),
                _ => assert!(whole.is_err()),
            }
        }
    }
}
