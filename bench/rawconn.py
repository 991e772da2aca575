#!/usr/bin/env python3
"""The floor under `bench conn`'s CPU: connections made with nothing of a client's own.

Opens N MQTT 3.1.1 connections on plain blocking sockets, one after another at up to RATE per
second (each: connect, CONNECT, read the 4-byte CONNACK), holds them for HOLD seconds, then
sends each a DISCONNECT and closes it: what `mqttcli bench conn` does, without an event loop,
a TLS layer or a histogram. On loopback the kernel does both ends' share of each TCP handshake
and teardown in the process that sends the packet, so this process's system time is what any
client pays there, whatever its own code costs. bench/load.sh prints it beside `bench conn`.

    rawconn.py -p PORT [-h HOST] [-c 10000] [--rate 2000] [--hold 5]

Prints one line of JSON shaped like `bench --json` for the fields load.sh reads, plus
"cpu_s": {"user": ..., "system": ...} of this process.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import struct
import time

from mqttwire import mqtt_str, packet


def main() -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("-h", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-c", "--clients", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--hold", type=float, default=5.0)
    a = ap.parse_args()
    addr = socket.getaddrinfo(a.host, a.port, socket.AF_UNSPEC, socket.SOCK_STREAM)[0]
    held, connect_ms = [], []
    start = time.monotonic()
    for i in range(a.clients):
        due = start + i / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t0 = time.monotonic()
        s = socket.socket(addr[0], socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(addr[4])
        body = mqtt_str(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + mqtt_str(b"rawconn-%d" % i)
        s.sendall(packet(0x10, body))
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                raise SystemExit(f"rawconn: connection {i} closed before CONNACK")
            ack += chunk
        if ack[0] != 0x20 or ack[3] != 0:
            raise SystemExit(f"rawconn: connection {i} refused: {ack.hex()}")
        connect_ms.append((time.monotonic() - t0) * 1000)
        held.append(s)
    connected_at = time.monotonic()
    time.sleep(a.hold)
    for s in held:
        s.sendall(b"\xe0\x00")
        s.close()
    use = resource.getrusage(resource.RUSAGE_SELF)
    connect_ms.sort()
    pick = lambda q: connect_ms[min(len(connect_ms) - 1, int(q * len(connect_ms)))]
    print(json.dumps({
        "connected": len(held), "acked": 0, "received": 0,
        "rates": {"connects_per_s": len(held) / (connected_at - start), "acked_per_s": 0, "received_per_s": 0},
        "latency_ms": {"connect": {"p50": pick(0.5), "p99": pick(0.99), "max": connect_ms[-1]}},
        "cpu_s": {"user": use.ru_utime, "system": use.ru_stime},
    }))


if __name__ == "__main__":
    main()
