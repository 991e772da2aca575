#!/usr/bin/env python3
"""The ceiling of a live `sub`: a subscriber that does nothing but read.

Connects (MQTT 3.1.1, clean session, client id ID), subscribes at QoS 0 (or --qos) to TOPIC
(a filter), with --marker acknowledges the one retained message it expects first and prints
"ready", and then reads
its socket up to 1 MiB at a time, 1 ms apart (as mqttcli paces a busy stream), until COUNT
PUBLISH packets of SIZE bytes each have arrived; then sends DISCONNECT and exits 0. It parses
and writes nothing, so the rate at which it receives is what the broker delivers on this
machine to a subscriber that costs nothing, and the broker's CPU while feeding it is the least
any subscriber can cost it. bench.py runs it beside `sub -t T -C N > /dev/null`.

    nullsub.py -p PORT -t TOPIC -i ID -n COUNT --size BYTES [--qos 0|1] [--marker]
               [-h HOST] [--wait SECONDS]
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time

from mqttwire import mqtt_str, packet


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("-h", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-i", "--id", required=True)
    ap.add_argument("-n", "--count", type=int, required=True)
    ap.add_argument("--size", type=int, required=True, help="bytes of each PUBLISH packet")
    ap.add_argument("--qos", type=int, default=0, choices=(0, 1))
    ap.add_argument("--marker", action="store_true")
    ap.add_argument("--wait", type=float, default=60.0)
    a = ap.parse_args()
    s = socket.create_connection((a.host, a.port), timeout=a.wait)
    s.sendall(packet(0x10, mqtt_str(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60)
                     + mqtt_str(a.id.encode())))
    if recv_exact(s, 4) != b"\x20\x02\x00\x00":
        sys.exit("nullsub: the broker refused the connection")
    s.sendall(packet(0x82, struct.pack(">H", 1) + mqtt_str(a.topic.encode()) + bytes([a.qos])))
    if recv_exact(s, 5) != b"\x90\x03\x00\x01" + bytes([a.qos]):
        sys.exit(f"nullsub: the subscription was not granted at QoS {a.qos}")
    if a.marker:
        # The retained marker: a PUBLISH, acknowledged if it came at QoS 1.
        first = recv_exact(s, 1)[0]
        length, shift = 0, 0
        while True:
            b = recv_exact(s, 1)[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = recv_exact(s, length)
        if first >> 4 != 3:
            sys.exit(f"nullsub: expected the retained marker, got packet type {first >> 4}")
        if first & 0x06:
            topic_len = struct.unpack(">H", body[:2])[0]
            s.sendall(b"\x40\x02" + body[2 + topic_len:4 + topic_len])
        print("ready", flush=True)
    want, got = a.count * a.size, 0
    while got < want:
        data = s.recv(1 << 20)
        if not data:
            sys.exit(f"nullsub: the broker closed the connection after {got // a.size} messages")
        got += len(data)
        time.sleep(0.001)
    if got != want:
        sys.exit(f"nullsub: {got} bytes, expected {want}: not all packets were {a.size} bytes")
    s.sendall(b"\xe0\x00")
    s.close()


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            sys.exit("nullsub: the broker closed the connection")
        buf += chunk
    return buf


if __name__ == "__main__":
    main()
