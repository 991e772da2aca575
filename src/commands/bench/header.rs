//! The header `bench pub` puts at the start of every payload, and `bench sub` reads: when the
//! message was meant to be sent, by which publisher, and its place in that publisher's stream.
//!
//! 24 bytes, big-endian: `MQB1` | send time, µs since the Unix epoch (u64) | publisher index
//! (u32) | sequence number from 0 (u64). The rest of the payload is padding. A wall-clock time
//! (not a monotonic one) because publisher and subscriber may be different processes or
//! machines: their clocks must agree (NTP/PTP) for end-to-end latency to mean anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

pub const MAGIC: &[u8; 4] = b"MQB1";
pub const LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub sent_us: u64,
    pub publisher: u32,
    pub seq: u64,
}

impl Header {
    /// The header, then `size - LEN` bytes of padding (`size` is at least `LEN`), appended to
    /// `out`: the payloads of a burst share one allocation.
    pub fn encode_into(&self, out: &mut BytesMut, size: usize) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.sent_us.to_be_bytes());
        out.extend_from_slice(&self.publisher.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.resize(start + size.max(LEN), b'.');
    }

    /// None for a payload that does not start with a header (another publisher's message).
    pub fn decode(payload: &[u8]) -> Option<Header> {
        if payload.len() < LEN || &payload[..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
        Some(Header {
            sent_us: u64_at(4),
            publisher: u32::from_be_bytes(payload[12..16].try_into().expect("4 bytes")),
            seq: u64_at(16),
        })
    }
}

/// Microseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Header {
        fn encode(&self, size: usize) -> Vec<u8> {
            let mut out = BytesMut::new();
            self.encode_into(&mut out, size);
            out.to_vec()
        }
    }

    #[test]
    fn round_trip_with_padding() {
        let h = Header {
            sent_us: 1_764_600_000_123_456,
            publisher: 70_000,
            seq: u64::MAX - 1,
        };
        let bytes = h.encode(100);
        assert_eq!(bytes.len(), 100);
        assert_eq!(&bytes[..4], b"MQB1");
        assert_eq!(Header::decode(&bytes), Some(h));
        assert_eq!(h.encode(LEN).len(), LEN);
    }

    #[test]
    fn the_layout_is_fixed() {
        // Other tools (and the tests' handcrafted streams) write this layout byte by byte.
        let h = Header {
            sent_us: 0x0102030405060708,
            publisher: 0x0a0b0c0d,
            seq: 0x1112131415161718,
        };
        let want: Vec<u8> = [
            b"MQB1".as_slice(),
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[0x0a, 0x0b, 0x0c, 0x0d],
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
        ]
        .concat();
        assert_eq!(h.encode(LEN), want);
    }

    #[test]
    fn other_payloads_are_not_headers() {
        assert_eq!(Header::decode(b"hello"), None);
        assert_eq!(Header::decode(&[0u8; 40]), None);
        let mut short = Header {
            sent_us: 1,
            publisher: 2,
            seq: 3,
        }
        .encode(LEN);
        short.pop();
        assert_eq!(Header::decode(&short), None);
    }
}
