//! MQTT 5 fields read from a packet's bytes, for the scripted broker's tests: what the client
//! sent, decoded just far enough to compare with what it was asked to send.

use super::fake::{varint, Packet};

/// One MQTT 5 property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    N(u32),
    S(String),
    B(Vec<u8>),
    /// A user property.
    P(String, String),
}

/// A property list as sent: (identifier, value), in order.
pub type Props = Vec<(u8, V)>;

pub fn p(key: &str, value: &str) -> V {
    V::P(key.into(), value.into())
}

/// Reads MQTT 5 fields from a packet's bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    pub fn byte(&mut self) -> u8 {
        self.take(1)[0]
    }

    pub fn two(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }

    pub fn four(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }

    pub fn varint(&mut self) -> usize {
        let (value, size) = varint(&self.bytes[self.at..]);
        self.at += size;
        value
    }

    pub fn binary(&mut self) -> Vec<u8> {
        let n = self.two() as usize;
        self.take(n).to_vec()
    }

    pub fn string(&mut self) -> String {
        String::from_utf8(self.binary()).expect("UTF-8 string")
    }

    /// A property list (its length first): (identifier, value) in the order sent.
    pub fn properties(&mut self) -> Props {
        let end = self.varint() + self.at;
        let mut props = Vec::new();
        while self.at < end {
            let id = self.byte();
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => V::N(self.byte().into()),
                0x13 | 0x21 | 0x22 | 0x23 => V::N(self.two().into()),
                0x02 | 0x11 | 0x18 | 0x27 => V::N(self.four()),
                0x0B => V::N(self.varint() as u32),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => V::S(self.string()),
                0x09 | 0x16 => V::B(self.binary()),
                0x26 => V::P(self.string(), self.string()),
                other => panic!("unknown property 0x{other:02x} in {:02x?}", self.bytes),
            };
            props.push((id, value));
        }
        props
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len() - self.at)
    }

    pub fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// What a PUBLISH carried.
#[derive(Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub topic: String,
    /// 0 at QoS 0.
    pub pkid: u16,
    pub properties: Props,
    pub payload: Vec<u8>,
}

pub fn decode_publish(packet: &Packet) -> Publish {
    assert_eq!(packet.kind(), 0x30, "PUBLISH: {:02x?}", packet.0);
    let flags = packet.0[0];
    let qos = (flags >> 1) & 0x03;
    let mut r = Reader::new(packet.body());
    let topic = r.string();
    let pkid = if qos > 0 { r.two() } else { 0 };
    let properties = r.properties();
    let payload = r.rest().to_vec();
    Publish {
        dup: flags & 0x08 != 0,
        qos,
        topic,
        pkid,
        properties,
        payload,
    }
}
