"""MQTT packet framing for the harness's own plain-socket clients (bench.py, pingpong.py)."""

from __future__ import annotations

import struct


def mqtt_str(b: bytes) -> bytes:
    """A length-prefixed MQTT string or binary."""
    return struct.pack(">H", len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    """A packet: its first byte, the remaining length as a variable byte integer, the body."""
    n, length = len(body), b""
    while True:
        d, n = n % 128, n // 128
        length += bytes([d | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body
