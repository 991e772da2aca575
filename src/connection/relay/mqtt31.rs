//! MQTT 3.1 (`-V 31`), which rumqttc does not speak. The two versions differ, for everything
//! mqttcli sends and receives, only in CONNECT's protocol name and level: 3.1.1's "MQTT" and 4,
//! 3.1's "MQIsdp" and 3. So the relay passes rumqttc's 3.1.1 connection through and rewrites
//! those two fields of its first packet; the rest of the packet, and everything after it, goes
//! through unchanged.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::super::mqtt::put_remaining_length;

const CONNECT: u8 = 0x10;
/// Protocol name (length-prefixed) and level, as 3.1.1 has them and as 3.1 has them.
const V311: &[u8] = b"\x00\x04MQTT\x04";
const V31: &[u8] = b"\x00\x06MQIsdp\x03";

/// Reads the start of rumqttc's CONNECT from `client`, up to the protocol level, and writes
/// 3.1's to `broker`, with the remaining length grown by the longer name.
pub async fn rewrite_connect(
    client: &mut (impl AsyncRead + Unpin),
    broker: &mut (impl AsyncWrite + Unpin),
) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("MQTT 3.1: {what}"));
    if client.read_u8().await? != CONNECT {
        return Err(bad("the first packet is not a CONNECT"));
    }
    // The remaining length: at most four 7-bit digits, least significant first.
    let mut remaining: u32 = 0;
    for i in 0..4 {
        let digit = client.read_u8().await?;
        remaining |= u32::from(digit & 0x7f) << (7 * i);
        if digit & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(bad("malformed remaining length"));
        }
    }
    let mut name = [0u8; V311.len()];
    client.read_exact(&mut name).await?;
    if name != V311 || (remaining as usize) < V311.len() {
        return Err(bad("not a 3.1.1 CONNECT"));
    }
    let grown = remaining + (V31.len() - V311.len()) as u32;
    let mut head = vec![CONNECT];
    put_remaining_length(&mut head, grown as usize);
    head.extend_from_slice(V31);
    broker.write_all(&head).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3.1.1 CONNECT with `rest` after the protocol level (flags, keepalive, payload).
    fn connect_311(rest: &[u8]) -> Vec<u8> {
        let mut body = V311.to_vec();
        body.extend_from_slice(rest);
        let mut p = vec![CONNECT];
        put_remaining_length(&mut p, body.len());
        p.extend(body);
        p
    }

    async fn rewrite(input: &[u8]) -> io::Result<Vec<u8>> {
        let mut client = input;
        let mut out = Vec::new();
        rewrite_connect(&mut client, &mut out).await?;
        out.extend_from_slice(client);
        Ok(out)
    }

    #[tokio::test]
    async fn name_and_level_change_and_the_rest_does_not() {
        // Flags (clean session), keepalive 60, client id "ab"; then a PINGREQ after it.
        let rest = b"\x02\x00\x3c\x00\x02ab";
        let mut input = connect_311(rest);
        input.extend_from_slice(b"\xc0\x00");
        let mut expected = vec![CONNECT, (V31.len() + rest.len()) as u8];
        expected.extend_from_slice(V31);
        expected.extend_from_slice(rest);
        expected.extend_from_slice(b"\xc0\x00");
        assert_eq!(rewrite(&input).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn the_remaining_length_may_grow_a_byte() {
        // 127 bytes in 3.1.1 (one length byte) become 129 in 3.1 (two).
        let rest = vec![7u8; 127 - V311.len()];
        let out = rewrite(&connect_311(&rest)).await.unwrap();
        assert_eq!(&out[..3], &[CONNECT, 0x81, 0x01]);
        assert_eq!(&out[3..3 + V31.len()], V31);
        assert_eq!(&out[3 + V31.len()..], &rest[..]);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert!(rewrite(b"\x30\x02ab").await.is_err());
        assert!(rewrite(b"\x10\x07\x00\x04MQTT\x05").await.is_err());
        assert!(rewrite(b"\x10\xff\xff\xff\xff").await.is_err());
    }
}
