//! Bursts of PUBLISHes under MQTT 3.1.1, for a load generator: rumqttc's event loop writes
//! and flushes every request on its own, a system call and a TCP segment per message, which
//! cost `bench pub` more CPU per message than the broker spent receiving it. The first
//! PUBLISH of a burst goes through rumqttc's request queue (which wakes its event loop); once
//! rumqttc has written it, the rest are written right behind it with one flush, through
//! rumqttc's own state machine, so packet ids, the in-flight window and the `Outgoing::Publish`
//! events come out as if rumqttc had sent them one by one.
//!
//! A session that publishes bursts publishes nothing else: the first PUBLISH written that is
//! not one of a burst's own is taken for the next burst's first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::{EventLoop, Outgoing, Publish, Request, StateError};

use super::{to_qos4, Qos};

/// The PUBLISHes of a burst that follow its first.
pub type Rest = Vec<Publish>;

/// Where the session puts each burst's rest before it queues the burst's first. A queue that
/// allocates nothing until used, not a channel: a channel's first block is allocated when it
/// is made, and `bench conn` holds thousands of sessions that never publish.
pub type Queue = Arc<Mutex<VecDeque<Rest>>>;

pub struct PublishBursts {
    queue: Queue,
    /// PUBLISHes written from bursts whose `Outgoing::Publish` rumqttc has yet to hand out.
    echoes: usize,
}

pub fn queue() -> (Queue, PublishBursts) {
    let queue = Queue::default();
    let bursts = PublishBursts {
        queue: queue.clone(),
        echoes: 0,
    };
    (queue, bursts)
}

/// Puts the rest of a burst in line, before its first is queued.
pub fn push(queue: &Queue, rest: Rest) {
    lock(queue).push_back(rest);
}

fn lock(queue: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Rest>> {
    // Poisoned only by a panic while pushing or popping, which leaves the queue whole.
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn publish(topic: &str, qos: Qos, retain: bool, payload: Bytes) -> Publish {
    let mut p = Publish::from_bytes(topic, to_qos4(qos), payload);
    p.retain = retain;
    p
}

impl PublishBursts {
    /// rumqttc handed out `ev`: if it wrote a burst's first PUBLISH, the rest of that burst.
    pub fn after(&mut self, ev: &rumqttc::Event) -> Option<Rest> {
        if !matches!(ev, rumqttc::Event::Outgoing(Outgoing::Publish(_))) {
            return None;
        }
        if self.echoes > 0 {
            self.echoes -= 1;
            return None;
        }
        lock(&self.queue).pop_front()
    }

    /// Writes `rest` behind the PUBLISH rumqttc has just written, with one flush.
    pub async fn write(&mut self, el: &mut EventLoop, rest: Rest) -> Result<(), StateError> {
        let Some(network) = el.network.as_mut() else {
            return Ok(());
        };
        for p in rest {
            // None: the packet id is still in flight (the caller overran the window);
            // rumqttc keeps it back as it would its own.
            if let Some(packet) = el.state.handle_outgoing_packet(Request::Publish(p))? {
                self.echoes += 1;
                network.write(packet).await?;
            }
        }
        network.flush().await
    }

    /// The connection is gone, and with it what was queued for it.
    pub fn clear(&mut self) {
        lock(&self.queue).clear();
        self.echoes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(pkid: u16) -> rumqttc::Event {
        rumqttc::Event::Outgoing(Outgoing::Publish(pkid))
    }

    fn rest(topic: &str, n: usize) -> Rest {
        (0..n)
            .map(|_| publish(topic, Qos::AtMostOnce, false, Bytes::new()))
            .collect()
    }

    /// Each burst's rest follows its own first PUBLISH, in order, and the PUBLISHes written
    /// from a rest are not taken for the next burst's first.
    #[test]
    fn a_rest_follows_its_first_and_echoes_are_skipped() {
        let (queue, mut bursts) = queue();
        push(&queue, rest("a", 2));
        push(&queue, rest("b", 1));
        let other = rumqttc::Event::Outgoing(Outgoing::PingReq);
        assert!(bursts.after(&other).is_none());
        let first = bursts.after(&written(0)).expect("the first burst's rest");
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|p| p.topic == "a"));
        // As `write` counts what it wrote: rumqttc hands out an event for each.
        bursts.echoes = first.len();
        assert!(bursts.after(&written(0)).is_none());
        assert!(bursts.after(&written(0)).is_none());
        let second = bursts.after(&written(0)).expect("the second burst's rest");
        assert_eq!(second[0].topic, "b");
        assert!(bursts.after(&written(0)).is_none());
        push(&queue, rest("c", 1));
        bursts.echoes = 3;
        bursts.clear();
        assert_eq!(bursts.echoes, 0);
        assert!(bursts.after(&written(0)).is_none());
    }
}
