//! Reads a busy stream of QoS 0 messages in bursts instead of one small read per message.
//!
//! A client that reads as soon as anything arrives, and keeps up, drains its socket on every
//! read; Linux then acknowledges at once, and a broker that writes each message on its own
//! (Mosquitto does) sends the next one straight away: one wake-up, one read and one write to
//! stdout per message or two. Measured with Mosquitto 2.0 pushing 200 000 64-byte messages
//! to `sub -t T` (QoS 0): about 110 000 reads and 1.1 CPU-seconds here, and the broker a third
//! busier than when it feeds `mosquitto_sub`. Letting the socket fill for a millisecond once
//! the stream is known to be busy turns that into a few thousand reads of a hundred messages
//! each, and the broker's writes coalesce too.
//!
//! The pause is taken only when it costs nothing worth having: after a read that found the
//! socket empty (the backlog is gone) while QoS 0 messages arrive faster than `BUSY` per
//! `WINDOW`. A lone message is read the moment it arrives, and QoS 1/2 deliveries are never
//! paused (the broker's in-flight window waits for their acknowledgements).
//!
//! (Asking the kernel to delay our TCP acknowledgements instead, `TCP_QUICKACK = 0`, batches
//! as well, but a broker with Nagle's algorithm on then holds every following message until
//! the delayed acknowledgement: up to 40 ms for sparse messages.)

use std::time::Duration;

use tokio::time::Instant;

/// A stream is busy from this many QoS 0 messages in one `WINDOW`.
const BUSY: u32 = 16;
const WINDOW: Duration = Duration::from_millis(1);
/// How long the socket fills before the next read: tokio's timer resolution, so one tick.
const PAUSE: Duration = Duration::from_millis(1);

#[derive(Debug, Default)]
pub struct Pacing {
    window_start: Option<Instant>,
    in_window: u32,
    pause: bool,
}

impl Pacing {
    /// A QoS 0 message came out of a poll; `waited`: that poll found nothing to read at first.
    pub fn received(&mut self, now: Instant, waited: bool) {
        match self.window_start {
            Some(start) if now.duration_since(start) <= WINDOW => self.in_window += 1,
            _ => {
                self.window_start = Some(now);
                self.in_window = 1;
            }
        }
        if waited && self.in_window >= BUSY {
            self.pause = true;
            self.window_start = None;
        }
    }

    /// Before the next poll: how long to let the socket fill first, if at all.
    pub fn pause(&mut self) -> Option<Duration> {
        std::mem::take(&mut self.pause).then_some(PAUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn a_lone_or_slow_stream_is_never_paused() {
        let start = Instant::now();
        let mut p = Pacing::default();
        // 10 000 messages a second, each read after a wait.
        for i in 0..1000 {
            p.received(at(start, i * 100), true);
            assert_eq!(p.pause(), None, "message {i}");
        }
    }

    #[test]
    fn a_busy_stream_pauses_once_the_backlog_is_read() {
        let start = Instant::now();
        let mut p = Pacing::default();
        // 100 000 a second, read from a backlog: no pause while there is more to read.
        for i in 0..(u64::from(BUSY) + 5) {
            p.received(at(start, i * 10), false);
            assert_eq!(p.pause(), None);
        }
        // The next one had to be waited for: the socket was empty, so let it fill.
        p.received(at(start, 300), true);
        assert_eq!(p.pause(), Some(PAUSE));
        assert_eq!(p.pause(), None, "one pause per decision");
        // A fresh window: the first waited-for message after the pause does not pause again.
        p.received(at(start, 1400), true);
        assert_eq!(p.pause(), None);
    }

    #[test]
    fn an_old_burst_does_not_count() {
        let start = Instant::now();
        let mut p = Pacing::default();
        for i in 0..u64::from(BUSY) {
            p.received(at(start, i), false);
        }
        // Long after: a lone message starts a new window.
        p.received(at(start, 50_000), true);
        assert_eq!(p.pause(), None);
    }
}
