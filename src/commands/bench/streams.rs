//! What one subscriber makes of the streams it receives: for each publisher, which sequence
//! numbers came, so that loss, duplicates and reordering can be counted.

use std::collections::HashMap;

/// One publisher's stream as one subscriber saw it.
#[derive(Debug, Default)]
struct Stream {
    /// Bit `seq - base` is set once `seq` has come.
    seen: Vec<u64>,
    base: u64,
    lowest: Option<u64>,
    highest: Option<u64>,
    unique: u64,
}

/// What a message was, relative to what came before it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Arrival {
    InOrder,
    /// A sequence number below one already received: it overtook nothing, it was overtaken.
    Reordered,
    Duplicate,
}

#[derive(Debug, Default)]
pub struct Streams {
    by_publisher: HashMap<u32, Stream>,
    pub duplicates: u64,
    pub reordered: u64,
}

/// Beyond this many sequence numbers below the first one seen, a stream's bitmap is not
/// moved down: such a message is counted, but not as a possible duplicate.
const MAX_REBASE: u64 = 1 << 20;

impl Streams {
    pub fn arrived(&mut self, publisher: u32, seq: u64) -> Arrival {
        let s = self
            .by_publisher
            .entry(publisher)
            .or_insert_with(|| Stream {
                base: seq,
                ..Stream::default()
            });
        if seq < s.base && s.base - seq <= MAX_REBASE {
            // Sent before the first one this subscriber saw, arrived after it: the bitmap
            // now starts here (rare, so rebuilt bit by bit).
            let old = std::mem::take(&mut s.seen);
            let delta = (s.base - seq) as usize;
            s.seen = vec![0; (delta + old.len() * 64).div_ceil(64)];
            for (w, bits) in old.iter().enumerate().filter(|(_, b)| **b != 0) {
                for b in (0..64).filter(|b| bits & (1 << b) != 0) {
                    let i = delta + w * 64 + b;
                    s.seen[i / 64] |= 1 << (i % 64);
                }
            }
            s.base = seq;
        }
        let tracked = seq >= s.base;
        let arrival = if seq < s.base {
            s.unique += 1;
            Arrival::Reordered
        } else {
            let i = (seq - s.base) as usize;
            let (word, bit) = (i / 64, i % 64);
            if word >= s.seen.len() {
                s.seen.resize(word + 1, 0);
            }
            if s.seen[word] & (1 << bit) != 0 {
                Arrival::Duplicate
            } else {
                s.seen[word] |= 1 << bit;
                s.unique += 1;
                if s.highest.is_some_and(|h| seq < h) {
                    Arrival::Reordered
                } else {
                    Arrival::InOrder
                }
            }
        };
        match arrival {
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Reordered => self.reordered += 1,
            Arrival::InOrder => {}
        }
        if tracked && arrival != Arrival::Duplicate {
            s.highest = Some(s.highest.map_or(seq, |h| h.max(seq)));
            s.lowest = Some(s.lowest.map_or(seq, |l| l.min(seq)));
        }
        arrival
    }

    /// Sequence numbers never received between the lowest and the highest received of each
    /// stream. What a publisher sent after the last one that arrived cannot be told from
    /// what it never sent: the publisher's own count says that.
    pub fn lost(&self) -> u64 {
        self.by_publisher
            .values()
            .map(|s| match (s.lowest, s.highest) {
                (Some(l), Some(h)) => (h - l + 1).saturating_sub(s.unique),
                _ => 0,
            })
            .sum()
    }

    #[cfg(test)]
    pub fn publishers(&self) -> usize {
        self.by_publisher.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_stream_has_nothing_to_report() {
        let mut s = Streams::default();
        for seq in 0..1000 {
            assert_eq!(s.arrived(7, seq), Arrival::InOrder);
        }
        assert_eq!((s.lost(), s.duplicates, s.reordered), (0, 0, 0));
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_counted() {
        let mut s = Streams::default();
        let arrivals: Vec<Arrival> = [0, 1, 3, 3, 2, 5]
            .iter()
            .map(|&q| s.arrived(1, q))
            .collect();
        use Arrival::*;
        assert_eq!(
            arrivals,
            [InOrder, InOrder, InOrder, Duplicate, Reordered, InOrder]
        );
        assert_eq!((s.lost(), s.duplicates, s.reordered), (1, 1, 1));
    }

    #[test]
    fn publishers_are_separate_streams() {
        let mut s = Streams::default();
        for seq in [0, 1, 2] {
            s.arrived(1, seq);
            s.arrived(2, seq + 10);
        }
        s.arrived(2, 14);
        assert_eq!(s.publishers(), 2);
        assert_eq!((s.lost(), s.duplicates, s.reordered), (1, 0, 0));
    }

    #[test]
    fn a_late_subscriber_counts_from_what_it_first_saw() {
        let mut s = Streams::default();
        for seq in 500..600 {
            s.arrived(0, seq);
        }
        assert_eq!(s.lost(), 0);
        // One that was overtaken by the first seen, far below it, still counts once.
        assert_eq!(s.arrived(0, 300), Arrival::Reordered);
        assert_eq!(s.arrived(0, 300), Arrival::Duplicate);
        assert_eq!(s.lost(), 199);
    }
}
