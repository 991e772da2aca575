#!/usr/bin/env python3
"""The floor under any end-to-end latency through a broker: a ping-pong on two plain sockets.

One process holds two MQTT 3.1.1 connections with no client library: A subscribes to
`PREFIX/pong`, B to `PREFIX/ping`. A publishes a ping (QoS 0), B reads it and at once
publishes it back as the pong, A reads that: one round trip is two passes through the broker,
so half of it is what one message's trip costs with nothing of a client's own added. Round
trips are GAP milliseconds apart, like `bench pub --rate`. bench/load.sh compares its p50 with
`mqttcli bench`'s end-to-end p50 at a low rate.

    pingpong.py -p PORT [-h HOST] [-n 1000] [--gap-ms 10]

Prints one line of JSON: {"round_trips": N, "one_way_ms": {"p50": ..., "p99": ...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time

from mqttwire import mqtt_str, packet


class Conn:
    def __init__(self, host: str, port: int, client_id: str, topic: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        connect = mqtt_str(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + mqtt_str(client_id.encode())
        self.sock.sendall(packet(0x10, connect))
        kind, _ = self.read()
        if kind != 0x20:
            raise SystemExit(f"pingpong: expected CONNACK, got packet type {kind:#x}")
        self.sock.sendall(packet(0x82, struct.pack(">H", 1) + mqtt_str(topic.encode()) + b"\x00"))
        kind, _ = self.read()
        if kind != 0x90:
            raise SystemExit(f"pingpong: expected SUBACK, got packet type {kind:#x}")

    def read(self) -> tuple[int, bytes]:
        """The next packet: its type (high nibble of the first byte) and its body."""
        while True:
            if len(self.buf) >= 2:
                length, shift, i = 0, 0, 1
                while i < len(self.buf):
                    length |= (self.buf[i] & 0x7F) << shift
                    shift += 7
                    i += 1
                    if self.buf[i - 1] & 0x80 == 0:
                        if len(self.buf) >= i + length:
                            kind, body = self.buf[0] & 0xF0, self.buf[i:i + length]
                            self.buf = self.buf[i + length:]
                            return kind, body
                        break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("pingpong: the broker closed the connection")
            self.buf += chunk

    def next_payload(self) -> bytes:
        while True:
            kind, body = self.read()
            if kind == 0x30:
                (n,) = struct.unpack(">H", body[:2])
                return body[2 + n:]

    def publish(self, topic: str, payload: bytes) -> None:
        self.sock.sendall(packet(0x30, mqtt_str(topic.encode()) + payload))


def main() -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("-h", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-n", "--count", type=int, default=1000)
    ap.add_argument("--gap-ms", type=float, default=10.0)
    args = ap.parse_args()
    prefix = f"pingpong/{os.getpid()}"
    a = Conn(args.host, args.port, f"pp-a-{os.getpid()}", f"{prefix}/pong")
    b = Conn(args.host, args.port, f"pp-b-{os.getpid()}", f"{prefix}/ping")
    one_way = []
    for i in range(args.count):
        payload = struct.pack(">Q", i) + b"x" * 56  # 64 bytes, as bench's default
        t0 = time.perf_counter()
        a.publish(f"{prefix}/ping", payload)
        b.publish(f"{prefix}/pong", b.next_payload())
        if a.next_payload() != payload:
            raise SystemExit("pingpong: a pong that was not the ping")
        one_way.append((time.perf_counter() - t0) / 2 * 1000.0)
        time.sleep(args.gap_ms / 1000.0)
    one_way.sort()
    pick = lambda q: one_way[min(len(one_way) - 1, int(q * len(one_way)))]
    print(json.dumps({"round_trips": len(one_way), "one_way_ms": {"p50": pick(0.5), "p99": pick(0.99)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
