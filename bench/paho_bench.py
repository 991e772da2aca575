#!/usr/bin/env python3
"""A small paho-mqtt load generator, for bench/load.sh to run beside `mqttcli bench pub`.

paho-mqtt is the library of the tutorial mqttcli grew from; this is what a Python user would
write to load a broker: C clients, each with paho's own network thread (`loop_start`), each
publishing N messages of S bytes as fast as paho's in-flight window (100, mqttcli's default)
lets it, to TOPIC with %i replaced by the client's index. Publish-to-acknowledgement latency
is taken from `publish()` to paho's on_publish (PUBACK at QoS 1; written at QoS 0).

    paho_bench.py -p PORT [-h HOST] [-c 4] [-q 1] [-n 20000] [-s 64] [-t 'load/%i']

Prints one JSON object with the fields bench/load.sh reads from `mqttcli bench --json`:
sent, acked, received, connected, rates, latency_ms.publish (p50, p99, max). Exits 1 if a
client failed or not every message was acknowledged within 300 s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


class Publisher:
    def __init__(self, index: int, args: argparse.Namespace) -> None:
        self.topic = args.topic.replace("%i", str(index))
        self.args = args
        self.sent_at: dict[int, float] = {}
        # Acknowledged before the mid publish() returned was recorded: paho's network thread
        # may answer before this thread takes the lock.
        self.early: dict[int, float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-bench-{index}")
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self.on_publish

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        now = time.perf_counter()
        with self.lock:
            t = self.sent_at.pop(mid, None)
            if t is None:
                self.early[mid] = now
            else:
                self.record(now - t)

    def record(self, seconds: float) -> None:
        self.latencies.append(seconds * 1000.0)
        if len(self.latencies) == self.args.count:
            self.done.set()

    def run(self) -> None:
        self.client.connect(self.args.host, self.args.port, keepalive=60)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("no CONNACK within 10 s")
        payload = b"x" * self.args.size
        for _ in range(self.args.count):
            # Not under self.lock: paho calls on_publish holding its own lock, which publish()
            # takes too.
            t0 = time.perf_counter()
            info = self.client.publish(self.topic, payload, qos=self.args.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
            with self.lock:
                acked = self.early.pop(info.mid, None)
                if acked is None:
                    self.sent_at[info.mid] = t0
                else:
                    self.record(acked - t0)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("-h", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-c", "--clients", type=int, default=4)
    ap.add_argument("-q", "--qos", type=int, choices=(0, 1), default=1)
    ap.add_argument("-n", "--count", type=int, default=20000)
    ap.add_argument("-s", "--size", type=int, default=64)
    ap.add_argument("-t", "--topic", default="load/%i")
    args = ap.parse_args()

    pubs = [Publisher(i, args) for i in range(args.clients)]
    start = time.perf_counter()
    threads = [threading.Thread(target=p.run) for p in pubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = all(p.done.wait(max(0.0, 300 - (time.perf_counter() - start))) for p in pubs)
    elapsed = time.perf_counter() - start
    for p in pubs:
        p.stop()
    lat = sorted(x for p in pubs for x in p.latencies)
    acked = len(lat)
    sent = args.clients * args.count
    print(json.dumps({
        "tool": f"paho-mqtt {importlib.metadata.version('paho-mqtt')}",
        "clients": args.clients,
        "connected": args.clients,
        "sent": sent,
        "acked": acked,
        "received": 0,
        "elapsed_s": round(elapsed, 3),
        "rates": {"acked_per_s": acked / elapsed if elapsed else 0.0, "received_per_s": 0.0,
                  "connects_per_s": 0.0},
        "latency_ms": {"publish": {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99),
                                   "max": lat[-1] if lat else 0.0}},
    }))
    return 0 if ok and acked == sent else 1


if __name__ == "__main__":
    sys.exit(main())
