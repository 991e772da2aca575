//! A resumed session's unacknowledged PUBLISHes and PUBRELs, which rumqttc keeps in its
//! pending queue to send first: put back in the order they were first sent, with DUP set
//! (see `Events::prepare_replays`).

/// `Events::prepare_replays` for one of rumqttc's two type trees (they differ only in the
/// types' paths): returns how many entries go out again. `last_written` is the id of the last
/// PUBLISH whose `Written` event was returned.
macro_rules! prepare {
    ($name:ident, $el:ty, $event:path, $request:path) => {
        pub fn $name(el: &mut $el, last_written: u16) -> usize {
            use rumqttc::Outgoing;
            use $event as E;
            use $request as Request;
            let last = newest_id(
                last_written,
                el.state.events.iter().map(|e| match e {
                    E::Outgoing(Outgoing::Publish(pkid)) => *pkid,
                    _ => 0,
                }),
            );
            reorder(&mut el.pending, |r| match r {
                Request::Publish(p) if p.pkid != 0 => {
                    p.dup = true;
                    Some(replay_age(p.pkid, last))
                }
                Request::PubRel(r) => Some(replay_age(r.pkid, last)),
                _ => None,
            })
        }
    };
}

prepare!(
    prepare_v4,
    rumqttc::EventLoop,
    rumqttc::Event,
    rumqttc::Request
);
prepare!(
    prepare_v5,
    rumqttc::v5::EventLoop,
    rumqttc::v5::Event,
    rumqttc::v5::Request
);

/// After a reconnect without a session: drops the `Outgoing::Publish` events rumqttc still
/// holds from the lost connection (PUBLISHes whose write failed with it; see `newest_id`). It
/// returns them after the CONNACK, though it dropped those PUBLISHes with the session: passed
/// on, each would be taken for the write of a message queued since, one that is not on the wire
/// yet. Returns how many.
macro_rules! forget_failed_writes {
    ($name:ident, $el:ty, $event:path) => {
        pub fn $name(el: &mut $el) -> usize {
            use rumqttc::Outgoing;
            use $event as E;
            let before = el.state.events.len();
            el.state
                .events
                .retain(|e| !matches!(e, E::Outgoing(Outgoing::Publish(_))));
            before - el.state.events.len()
        }
    };
}

forget_failed_writes!(forget_failed_writes_v4, rumqttc::EventLoop, rumqttc::Event);
forget_failed_writes!(
    forget_failed_writes_v5,
    rumqttc::v5::EventLoop,
    rumqttc::v5::Event
);

/// rumqttc gave a new PUBLISH an id still waiting for its acknowledgement: it holds that
/// PUBLISH back until the acknowledgement comes (and drops it if another collides meanwhile).
pub fn collision(pkid: u16) {
    tracing::debug!("packet id {pkid} is still in flight: rumqttc holds a PUBLISH back");
}

/// The id of the newest PUBLISH written: `last_written` (the last one whose `Written` event
/// was returned), unless rumqttc still holds `Outgoing::Publish` events it has not returned
/// (`queued`, oldest first; 0 for any other event). Those are the PUBLISHes whose write failed
/// with the connection: rumqttc queues the event when it hands out the id, before writing, and
/// keeps it across the reconnect, so the newest message's id has no returned event yet.
fn newest_id(last_written: u16, queued: impl Iterator<Item = u16>) -> u16 {
    queued
        .filter(|&pkid| pkid != 0)
        .last()
        .unwrap_or(last_written)
}

/// How long ago packet id `pkid` was handed out, in ids, when `last` was the last one: ids
/// above `last` come from before the ids wrapped, so they are older than those up to it.
fn replay_age(pkid: u16, last: u16) -> u32 {
    let (id, last) = (u32::from(pkid), u32::from(last));
    if id > last {
        id - last
    } else {
        id + 0x1_0000 - last
    }
}

/// Puts the entries `key` gives an age first, oldest first, and the others after them in their
/// order. Returns how many had an age.
fn reorder<T>(
    queue: &mut std::collections::VecDeque<T>,
    mut key: impl FnMut(&mut T) -> Option<u32>,
) -> usize {
    let mut aged = Vec::new();
    let mut rest = Vec::new();
    for mut item in queue.drain(..) {
        match key(&mut item) {
            Some(age) => aged.push((age, item)),
            None => rest.push(item),
        }
    }
    // Stable, so entries of the same age (a PUBLISH and its PUBREL cannot both be here) keep
    // their order.
    aged.sort_by_key(|(age, _)| *age);
    let n = aged.len();
    queue.extend(aged.into_iter().map(|(_, item)| item));
    queue.extend(rest);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rumqttc's own state after a write failed: 150 PUBLISHes (ids 1..=100, then 1..=50),
    /// the first 50 acknowledged, and the write of the 150th broken (a reset connection gives
    /// EPIPE): its id was handed out and its `Outgoing::Publish` event queued before the write,
    /// so the event is still in rumqttc's queue, not returned. The replays must go out oldest
    /// first, 51..=150, with DUP; the newest must not count as the oldest.
    #[test]
    fn a_publish_whose_write_failed_is_replayed_last() {
        use rumqttc::{Incoming, MqttOptions, PubAck, Publish, QoS, Request};
        let mut el = rumqttc::EventLoop::new(MqttOptions::new("t", "localhost", 1883), 10);
        let mut last_written = 0;
        let mut returned = |el: &mut rumqttc::EventLoop| match el.state.events.pop_front() {
            Some(rumqttc::Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => last_written = pkid,
            Some(_) => {}
            None => panic!("no event"),
        };
        for n in 1..=150u32 {
            if n == 101 {
                for pkid in 1..=50 {
                    let ack = Incoming::PubAck(PubAck::new(pkid));
                    el.state.handle_incoming_packet(ack).unwrap();
                    returned(&mut el);
                }
            }
            let publish = Publish::new("t", QoS::AtLeastOnce, n.to_string());
            el.state
                .handle_outgoing_packet(Request::Publish(publish))
                .unwrap();
            if n < 150 {
                returned(&mut el);
            }
        }
        el.clean(); // what rumqttc does on the error
        assert_eq!(last_written, 49);
        assert_eq!(prepare_v4(&mut el, last_written), 100);
        let replays: Vec<(String, bool)> = el
            .pending
            .iter()
            .map(|r| match r {
                Request::Publish(p) => (String::from_utf8_lossy(&p.payload).into_owned(), p.dup),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<(String, bool)> = (51..=150).map(|n| (n.to_string(), true)).collect();
        assert_eq!(replays, expected);
    }

    #[test]
    fn replays_go_oldest_first_after_the_ids_wrapped() {
        // Ids 1..=20; 15..=20 went out before the wrap, then 1..=14, the last one 14. Entries
        // without an id (never sent) stay behind the replays, in their order.
        let mut queue: std::collections::VecDeque<(u16, &str)> = [
            (0, "new a"),
            (3, ""),
            (18, ""),
            (14, ""),
            (15, ""),
            (0, "new b"),
            (1, ""),
        ]
        .into();
        let n = reorder(&mut queue, |(pkid, _)| {
            (*pkid != 0).then(|| replay_age(*pkid, 14))
        });
        assert_eq!(n, 5);
        let order: Vec<(u16, &str)> = queue.into_iter().collect();
        assert_eq!(
            order,
            [
                (15, ""),
                (18, ""),
                (1, ""),
                (3, ""),
                (14, ""),
                (0, "new a"),
                (0, "new b")
            ]
        );
        // No wrap: plain id order.
        assert!(replay_age(3, 20) < replay_age(7, 20));
    }
}
