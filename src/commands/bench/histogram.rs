//! Latency histograms: HdrHistogram in microseconds, its percentiles in milliseconds, and its
//! standard compressed encoding (V2 + DEFLATE, base64: what HdrHistogram's own tools read) so
//! the histograms of separate runs can be added up by `bench merge`.

use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One microsecond to one hour, three significant digits: 0.1% resolution everywhere.
const HIGHEST_US: u64 = 3_600_000_000;
const DIGITS: u8 = 3;

#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, HIGHEST_US, DIGITS).expect("valid bounds"))
    }
}

impl Latency {
    #[cfg(test)]
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).max(1);
        self.0.saturating_record(us);
    }

    /// Values past an hour are kept as an hour rather than dropped, so counts stay true.
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail (and would only lose values if not).
        let _ = self.0.add(&other.0);
    }

    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("serializing to memory");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Latency, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("a histogram is not base64 ({e})"))?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("a histogram cannot be read ({e:?})"))?;
        // Re-bounded so that histograms from any run can be added to ours.
        let mut ours = Latency::default();
        ours.0
            .add(&h)
            .map_err(|e| format!("a histogram has values out of range ({e:?})"))?;
        Ok(ours)
    }

    /// The percentiles in milliseconds, µs resolution.
    pub fn stats(&self) -> Stats {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |p: f64| {
            if self.0.is_empty() {
                0.0
            } else {
                ms(self.0.highest_equivalent(self.0.value_at_quantile(p)))
            }
        };
        let empty = self.0.is_empty();
        Stats {
            count: self.0.len(),
            min: if empty { 0.0 } else { ms(self.0.min()) },
            mean: if empty {
                0.0
            } else {
                self.0.mean().round() / 1000.0
            },
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            max: if empty {
                0.0
            } else {
                ms(self.0.highest_equivalent(self.0.max()))
            },
        }
    }
}

/// A histogram's summary, as the table and `--json` show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// When each message of a paced stream is due. Latency is measured from the due time, not
/// from when the message actually went out: a generator held up by a slow broker sends late,
/// and measuring from the late send would hide exactly the wait it is there to measure
/// (coordinated omission). Without a rate every message is due when it is sent.
/// How late a timer may wake (tokio's resolution is a millisecond) before a message counts
/// as held up.
const TIMER_SLACK: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    interval: Option<Duration>,
}

impl Schedule {
    pub fn new(start: Instant, rate: Option<f64>) -> Schedule {
        Schedule {
            start,
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        }
    }

    /// When message `k` (from 0) is due; None when unpaced (send at once).
    pub fn due(&self, k: u64) -> Option<Instant> {
        self.interval.map(|i| self.start + i.mul_f64(k as f64))
    }

    /// Where latency of message `k`, sent at `sent`, is measured from: when it was due, if
    /// it went out later than the timer's own slack; else when it went out, so that a paced
    /// run at a low rate does not read the timer's granularity as the broker's latency.
    pub fn origin(&self, k: u64, sent: Instant) -> Instant {
        match self.due(k) {
            Some(d) if sent.saturating_duration_since(d) >= TIMER_SLACK => d,
            _ => sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values_us: &[u64]) -> Latency {
        let mut l = Latency::default();
        for &v in values_us {
            l.record_us(v);
        }
        l
    }

    #[test]
    fn percentiles_in_milliseconds_with_microsecond_resolution() {
        let l = of(&(1..=1000).collect::<Vec<_>>());
        let s = l.stats();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, 0.5);
        assert_eq!(s.p90, 0.9);
        assert_eq!(s.p99, 0.99);
        assert_eq!(s.p99_9, 0.999);
        assert_eq!(s.max, 1.0);
        assert_eq!(s.min, 0.001);
        // Past 2048 µs the buckets widen: three significant digits, never worse than 0.1%.
        let big = of(&[123_456]).stats();
        assert!((big.p50 - 123.456).abs() <= 0.124, "{big:?}");
    }

    #[test]
    fn encoding_round_trips_and_merges_as_the_sum() {
        let a = of(&[100, 200, 300, 5_000_000]);
        let b = of(&[150, 250]);
        let back = Latency::decode(&a.encode()).unwrap();
        assert_eq!(back.stats(), a.stats());
        let mut merged = Latency::decode(&a.encode()).unwrap();
        merged.add(&Latency::decode(&b.encode()).unwrap());
        assert_eq!(
            merged.stats(),
            of(&[100, 200, 300, 5_000_000, 150, 250]).stats()
        );
        assert_eq!(merged.count(), 6);
        assert!(Latency::decode("not base64!").is_err());
        assert!(Latency::decode("aGVsbG8=").is_err());
    }

    #[test]
    fn empty_histograms_summarise_to_zero() {
        let s = Latency::default().stats();
        assert_eq!(s, Stats::default());
        let back = Latency::decode(&Latency::default().encode()).unwrap();
        assert_eq!(back.count(), 0);
    }

    #[test]
    fn out_of_range_values_are_kept() {
        let l = of(&[0, HIGHEST_US * 10]);
        assert_eq!(l.count(), 2);
    }

    /// A broker that stalls for 100 ms once, under a 1 ms schedule: the 100 messages due
    /// during the stall go out late. Measured from the send they would look fast; measured
    /// from the schedule they carry the wait, as a user sending at that rate would see it.
    #[test]
    fn latency_is_measured_from_the_schedule() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, Some(1000.0));
        let mut corrected = Latency::default();
        let mut naive = Latency::default();
        let stall_end = t0 + Duration::from_millis(100);
        for k in 0..200u64 {
            let due = s.due(k).unwrap();
            assert_eq!(due, t0 + Duration::from_millis(k));
            // The stall blocks sending: messages due during it go out when it ends.
            let sent = due.max(stall_end);
            let done = if k == 0 { stall_end } else { sent } + Duration::from_micros(50);
            corrected.record(done - s.origin(k, sent));
            naive.record(done - sent);
        }
        let (c, n) = (corrected.stats(), naive.stats());
        assert!(n.p90 < 0.06, "the naive view misses the stall: {n:?}");
        assert!(c.p90 > 50.0 && c.max >= 100.0, "the stall shows: {c:?}");
        // A timer waking a little late is not a stall.
        let late = t0 + Duration::from_micros(1500);
        assert_eq!(s.origin(0, late), late);
        assert_eq!(s.origin(0, t0 + TIMER_SLACK), t0);
        // Unpaced: measured from the send itself.
        let unpaced = Schedule::new(t0, None);
        assert_eq!(unpaced.due(5), None);
        assert_eq!(unpaced.origin(5, stall_end), stall_end);
    }
}
