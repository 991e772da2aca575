//! Topic aliases for the PUBLISHes of a stream (MQTT 5): the first message to a topic carries
//! the topic and an alias, every later one only the alias. On a stream of small messages the
//! topic is most of each packet, and the broker parses it on every one.
//!
//! An alias means something only on the connection that announced it [MQTT-3.3.2-7]. rumqttc
//! keeps the PUBLISHes a lost connection left unacknowledged (and the requests still queued)
//! in its pending queue and sends them first on the next one, where their aliases mean
//! nothing: `lost` puts their topics back. Aliases are never moved to another topic within a
//! connection, so a pending PUBLISH's alias names exactly one topic.
//!
//! The table is shared by the client half (`Session::publish`, which decides and queues under
//! the lock) and the driver (`lost`, `connected`, between two polls). rumqttc moves its
//! request queue into the pending queue and returns the error within one poll of the driver;
//! the driver takes the lock before it awaits anything, so on the current-thread runtime the
//! commands run on, no PUBLISH can be queued in between without its topic.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::Request;

#[derive(Default)]
pub struct Aliases {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// The broker's Topic Alias Maximum on this connection; 0 while there is none.
    max: u16,
    by_topic: HashMap<Box<str>, u16>,
    by_alias: HashMap<u16, Box<str>>,
    /// The next alias to hand out automatically.
    next: u16,
}

/// How a PUBLISH names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAs {
    /// The topic, no alias: no alias is free, or the caller's names another topic.
    Whole,
    /// The topic and the alias, which names it from now on.
    Announce(u16),
    /// The alias alone: the broker knows its topic.
    Alias(u16),
}

impl Aliases {
    /// Connected (again), to a broker that takes `max` aliases (its CONNACK's Topic Alias
    /// Maximum; 0 or absent: none).
    pub fn connected(&self, max: Option<u16>) {
        let mut t = self.lock();
        *t = Table {
            max: max.unwrap_or(0),
            next: 1,
            ..Table::default()
        };
        if t.max > 0 {
            tracing::debug!(
                "the broker takes {} topic aliases: a topic goes out once, then as its alias",
                t.max
            );
        }
    }

    /// The connection is lost: the PUBLISHes in `pending` get their topics back (and lose their
    /// aliases), and no alias holds until `connected`.
    pub fn lost(&self, pending: &mut VecDeque<Request>) {
        let mut t = self.lock();
        for request in pending.iter_mut() {
            if let Request::Publish(p) = request {
                t.restore(p);
            }
        }
        *t = Table::default();
    }

    /// Decides how a PUBLISH to `topic` goes out, with the alias the caller gave (`-D PUBLISH
    /// topic-alias`) if any, and calls `queue` with that while no other can be decided: the
    /// order in which PUBLISHes are queued must be the order in which their aliases were
    /// announced. If `queue` fails (the request queue is full), nothing was announced and it
    /// returns the failure.
    pub fn send<E>(
        &self,
        topic: &str,
        given: Option<u16>,
        queue: impl FnOnce(&TopicAs) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut t = self.lock();
        let how = t.choose(topic, given);
        let result = queue(&how);
        if result.is_err() {
            if let TopicAs::Announce(alias) = how {
                t.forget(alias);
            }
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table half-changed: every change is one insert.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Table {
    fn choose(&mut self, topic: &str, given: Option<u16>) -> TopicAs {
        if let Some(&alias) = self.by_topic.get(topic) {
            if given.is_none_or(|g| g == alias) {
                return TopicAs::Alias(alias);
            }
        }
        let alias = match given {
            // The caller's alias, unless it already names another topic here.
            Some(g) if g >= 1 && g <= self.max && !self.by_alias.contains_key(&g) => g,
            Some(_) => return TopicAs::Whole,
            None => {
                while self.by_alias.contains_key(&self.next) {
                    self.next = self.next.saturating_add(1);
                }
                if self.next == 0 || self.next > self.max {
                    return TopicAs::Whole;
                }
                self.next
            }
        };
        self.by_topic.insert(topic.into(), alias);
        self.by_alias.insert(alias, topic.into());
        TopicAs::Announce(alias)
    }

    fn forget(&mut self, alias: u16) {
        if let Some(topic) = self.by_alias.remove(&alias) {
            self.by_topic.remove(&topic);
        }
    }

    fn restore(&self, p: &mut Publish) {
        let Some(alias) = p
            .properties
            .as_mut()
            .and_then(|props| props.topic_alias.take())
        else {
            return;
        };
        if p.topic.is_empty() {
            match self.by_alias.get(&alias) {
                Some(topic) => p.topic = Bytes::copy_from_slice(topic.as_bytes()),
                // Cannot happen: an alias leaves the table only with its connection.
                None => tracing::warn!("a PUBLISH to alias {alias} lost its topic"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;

    fn choose(a: &Aliases, topic: &str, given: Option<u16>) -> TopicAs {
        let mut seen = None;
        a.send(topic, given, |how| {
            seen = Some(*how);
            Ok::<(), ()>(())
        })
        .unwrap();
        seen.unwrap()
    }

    #[test]
    fn a_topic_is_announced_once_then_sent_as_its_alias() {
        let a = Aliases::default();
        a.connected(Some(2));
        assert_eq!(choose(&a, "a/b", None), TopicAs::Announce(1));
        assert_eq!(choose(&a, "a/b", None), TopicAs::Alias(1));
        assert_eq!(choose(&a, "c", None), TopicAs::Announce(2));
        // The broker takes two: a third topic goes out whole, every time.
        assert_eq!(choose(&a, "d", None), TopicAs::Whole);
        assert_eq!(choose(&a, "d", None), TopicAs::Whole);
        assert_eq!(choose(&a, "a/b", None), TopicAs::Alias(1));
    }

    #[test]
    fn no_aliases_without_a_broker_that_takes_them() {
        let a = Aliases::default();
        assert_eq!(choose(&a, "a", None), TopicAs::Whole);
        a.connected(None);
        assert_eq!(choose(&a, "a", None), TopicAs::Whole);
        assert_eq!(choose(&a, "a", Some(1)), TopicAs::Whole);
    }

    #[test]
    fn a_given_alias_names_one_topic_per_connection() {
        let a = Aliases::default();
        a.connected(Some(10));
        assert_eq!(choose(&a, "a", Some(7)), TopicAs::Announce(7));
        assert_eq!(choose(&a, "a", Some(7)), TopicAs::Alias(7));
        // 7 is a's: b goes out whole rather than move it (pending PUBLISHes rely on it).
        assert_eq!(choose(&a, "b", Some(7)), TopicAs::Whole);
        // Automatic ones skip the given ones.
        for n in 1..=6 {
            assert_eq!(choose(&a, &format!("auto{n}"), None), TopicAs::Announce(n));
        }
        assert_eq!(choose(&a, "auto7", None), TopicAs::Announce(8));
    }

    #[test]
    fn a_failed_queueing_announces_nothing() {
        let a = Aliases::default();
        a.connected(Some(5));
        let r = a.send("a", None, |how| {
            assert_eq!(*how, TopicAs::Announce(1));
            Err("full")
        });
        assert_eq!(r, Err("full"));
        assert_eq!(choose(&a, "a", None), TopicAs::Announce(1));
    }

    fn publish(topic: &str, alias: Option<u16>) -> Request {
        let props = PublishProperties {
            topic_alias: alias,
            ..PublishProperties::default()
        };
        Request::Publish(Publish::new(topic, QoS::AtLeastOnce, "x", Some(props)))
    }

    #[test]
    fn a_lost_connection_gives_pending_publishes_their_topics_back() {
        let a = Aliases::default();
        a.connected(Some(5));
        assert_eq!(choose(&a, "a/b", None), TopicAs::Announce(1));
        assert_eq!(choose(&a, "c", None), TopicAs::Announce(2));
        let mut pending: VecDeque<Request> = [
            publish("a/b", Some(1)),
            publish("", Some(1)),
            publish("", Some(2)),
            publish("plain", None),
            Request::PingReq,
        ]
        .into();
        a.lost(&mut pending);
        let sent: Vec<(String, Option<u16>)> = pending
            .iter()
            .filter_map(|r| match r {
                Request::Publish(p) => Some((
                    String::from_utf8(p.topic.to_vec()).unwrap(),
                    p.properties.as_ref().and_then(|p| p.topic_alias),
                )),
                _ => None,
            })
            .collect();
        let want = [("a/b", None), ("a/b", None), ("c", None), ("plain", None)];
        assert_eq!(
            sent,
            want.map(|(t, a)| (t.to_string(), a)).to_vec(),
            "every PUBLISH names its topic"
        );
        // Nothing holds until the next CONNACK, which starts afresh.
        assert_eq!(choose(&a, "a/b", None), TopicAs::Whole);
        a.connected(Some(5));
        assert_eq!(choose(&a, "c", None), TopicAs::Announce(1));
    }
}
