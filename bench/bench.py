#!/usr/bin/env python3
"""Measurements for bench/run.sh: mqttcli against mosquitto_pub / mosquitto_sub.

Called by bench/run.sh, which builds mqttcli, starts a private Mosquitto and stops it again.
Standard library only. Every wait is bounded; every child process is killed on the way out.
Configuration comes from the environment (see bench/run.sh for the list and defaults).
"""

from __future__ import annotations

import os
import platform
import queue
import socket
import struct
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from mqttwire import mqtt_str, packet

# ----------------------------------------------------------------------------- configuration


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not an integer")
    if v < 0:
        sys.exit(f"bench: {name} must not be negative")
    return v


MQTTCLI = os.environ["BENCH_MQTTCLI"]  # a private copy of the release binary
PORT = os.environ["BENCH_PORT"]
BROKER_PID = int(os.environ["BENCH_BROKER_PID"])
WORKDIR = os.environ["BENCH_TMP"]
RUNS = env_int("RUNS", 300)  # single-publish runs per tool and QoS
LINES = env_int("LINES", 200_000)  # messages in the throughput runs
PAYLOAD = env_int("PAYLOAD", 64)  # bytes per message (line length without the newline)
REPEATS = env_int("REPEATS", 3)  # throughput runs per tool and case (median reported)
RSS_RUNS = env_int("RSS_RUNS", 3)
BROKER_LOG = os.environ["BENCH_BROKER_LOG"]  # the broker's stderr, with its SUBSCRIBE lines
LAT_MSGS = env_int("LAT_MSGS", 1000)  # lone messages in the latency runs
LAT_GAP_MS = env_int("LAT_GAP_MS", 5)  # pause between two of them
SCALE_MSGS = [int(x) for x in os.environ.get("SCALE_MSGS", "1000000,10000000").split(",") if x]
BIG_MB = env_int("BIG_MB", 256)  # the large payload; the broker takes up to 256 MiB less 1 byte
TOPICS = env_int("TOPICS", 10_000)  # distinct topics through one sub
WINDOWS = [int(x) for x in os.environ.get("WINDOWS", "1,10,100,1000").split(",") if x]  # pub -M
WINDOW_LINES = env_int("WINDOW_LINES", 20_000)  # lines per pub -l run in the window table
# mosquitto_pub 2.0.x loses QoS 1 messages in -l mode past 65535 lines (see BENCHMARKS.md), so
# the QoS 1 `pub -l` comparison that counts against the target is also run below that limit.
SMALL_LINES = min(env_int("SMALL_LINES", 60_000), LINES)
ALIAS_LINES = env_int("ALIAS_LINES", 10_000)  # messages per run of the topic-alias part
ALIAS_TOPIC = os.environ.get("ALIAS_TOPIC", "factory/line-3/press-12/sensors/temperature")
ALL_PARTS = ("single", "pub", "sub", "latency", "rss", "scale", "aliases")
PARTS = set(os.environ.get("PARTS", ",".join(ALL_PARTS)).replace(" ", "").split(","))
if not PARTS <= set(ALL_PARTS):
    sys.exit(f"bench: PARTS={os.environ.get('PARTS')!r}: a comma-separated subset of {','.join(ALL_PARTS)}")
WAIT = env_int("WAIT", 60)  # upper bound, in seconds, for any single wait
QUIET = 3.0  # a QoS 0 run is over when nothing arrived for this long after the publisher exited
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

if RUNS < 1 or REPEATS < 1 or RSS_RUNS < 1 or LINES < 1 or PAYLOAD < 9:
    sys.exit("bench: RUNS, REPEATS, RSS_RUNS and LINES must be at least 1, PAYLOAD at least 9")

MOSQ_PUB = shutil.which("mosquitto_pub") or sys.exit("bench: mosquitto_pub not found")
MOSQ_SUB = shutil.which("mosquitto_sub") or sys.exit("bench: mosquitto_sub not found")

# ----------------------------------------------------------------------------- process hygiene

_children: list[subprocess.Popen] = []


def spawn(argv: list[str], **kw) -> subprocess.Popen:
    p = subprocess.Popen(argv, **kw)
    _children.append(p)
    return p


def reap(p: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait (bounded) for p; return (exit code, user+sys CPU seconds of p itself)."""
    code, ru, _ = reap_ru(p, timeout)
    return code, ru.ru_utime + ru.ru_stime


def reap_ru(p: subprocess.Popen, timeout: float):
    """Wait (bounded) for p; return (exit code, its rusage, time.monotonic() when seen gone)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            if p in _children:
                _children.remove(p)
            return p.returncode, ru, time.monotonic()
        if time.monotonic() > deadline:
            kill(p)
            raise Failure(f"{os.path.basename(p.args[0])} did not exit within {timeout:.0f} s")
        time.sleep(0.002)


def kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if p in _children:
        _children.remove(p)


def kill_all() -> None:
    for p in list(_children):
        kill(p)


class Failure(Exception):
    pass


def _on_term(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGHUP, _on_term)

# ----------------------------------------------------------------------------- tools

TOOLS = ("mqttcli", "mosquitto")
_topic_seq = 0


def fresh_prefix() -> str:
    """A topic prefix no earlier step used: each run gets its own topics and retained marker."""
    global _topic_seq
    _topic_seq += 1
    return f"bench/{os.getpid()}/{_topic_seq}"


def pub_argv(tool: str, topic: str, qos: int, message: str | None = None, lines: bool = False,
             retain: bool = False) -> list[str]:
    exe = MQTTCLI if tool == "mqttcli" else MOSQ_PUB
    argv = [exe] if tool != "mqttcli" else [exe, "pub"]
    argv += ["-h", HOST, "-p", PORT, "-t", topic, "-q", str(qos)]
    argv += ["-l"] if lines else ["-m", message or ""]
    if retain:
        argv.append("-r")
    return argv


def sub_argv(tool: str, filt: str, qos: int, count: int | None, timeout: int) -> list[str]:
    argv = [MQTTCLI, "sub"] if tool == "mqttcli" else [MOSQ_SUB]
    argv += ["-h", HOST, "-p", PORT, "-t", filt, "-q", str(qos), "-W", str(timeout)]
    if count is not None:
        argv += ["-C", str(count)]
    return argv


def run_checked(argv: list[str], timeout: float = WAIT, stdin=subprocess.DEVNULL) -> None:
    p = spawn(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(p)
        raise Failure(f"timed out after {timeout} s: {' '.join(argv)}")
    _children.remove(p)
    if p.returncode != 0:
        raise Failure(f"exit {p.returncode}: {' '.join(argv)}: {err.decode(errors='replace').strip()}")


def put_marker(prefix: str) -> None:
    """Retained READY under the subscriber's filter: the first line a subscriber prints is this
    marker, which the broker sends only after the SUBACK, so its arrival means 'subscribed'."""
    run_checked(pub_argv("mosquitto", f"{prefix}/ready", 1, "READY", retain=True))


def clear_marker(prefix: str) -> None:
    run_checked([MOSQ_PUB, "-h", HOST, "-p", PORT, "-t", f"{prefix}/ready", "-q", "1", "-r", "-n"])


class LineCounter:
    """Reads a subscriber's stdout in a thread: counts lines, keeps the data (to check for
    duplicates afterwards) and notes when the first marker and the last line arrived."""

    def __init__(self, proc: subprocess.Popen, want: int | None, marker: bool = True):
        self.proc = proc
        self.marker = marker
        self.want = want  # lines including the marker; None: no target
        self.lines = 0
        self.chunks: list[bytes] = []
        self.t_last = 0.0
        self.ready = threading.Event()
        self.done = threading.Event()
        self.eof = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                b = os.read(fd, 1 << 20)
            except OSError:
                break
            if not b:
                break
            now = time.monotonic()
            n = b.count(b"\n")
            self.chunks.append(b)
            if n:
                self.lines += n
                self.t_last = now
                self.ready.set()
                if self.want is not None and self.lines >= self.want:
                    self.done.set()
        self.eof.set()
        self.ready.set()
        self.done.set()

    def data_lines(self) -> list[bytes]:
        all_lines = b"".join(self.chunks).split(b"\n")
        return [ln for ln in all_lines[1 if self.marker else 0:] if ln]  # without the READY marker

    def wait_ready(self, what: str) -> None:
        if not self.ready.wait(WAIT) or self.lines == 0:
            raise Failure(f"{what} never became ready (no marker within {WAIT} s; exit {self.proc.poll()})")


def start_subscriber(tool: str, prefix: str, qos: int, count: int | None,
                     timeout: int) -> tuple[subprocess.Popen, LineCounter]:
    p = spawn(sub_argv(tool, f"{prefix}/#", qos, None if count is None else count + 1, timeout),
              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c = LineCounter(p, None if count is None else count + 1)
    c.wait_ready(f"{tool} subscriber")
    return p, c


def wait_subscribed(client_id: str, filt: str) -> None:
    """Waits for the broker's log line of this client's SUBSCRIBE: a subscriber that gets no
    retained marker (the common case) tells nothing on its own."""
    want = f" {client_id} "
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with open(BROKER_LOG, errors="replace") as f:
            for line in f:
                if want in line and line.rstrip("\n").endswith(f" {filt}"):
                    return
        time.sleep(0.005)
    raise Failure(f"{client_id} did not subscribe to {filt} within {WAIT} s")


def broker_cpu() -> float:
    with open(f"/proc/{BROKER_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise Failure(f"{key} missing from /proc/{pid}/status")


def check_unique(counter: LineCounter) -> tuple[int, int]:
    """(data lines received, distinct message numbers among them)."""
    lines = counter.data_lines()
    ids = {ln[:8] for ln in lines}
    bad = [ln for ln in lines[:1000] if len(ln) != PAYLOAD]
    if bad:
        raise Failure(f"unexpected payload received: {bad[0][:80]!r}")
    return len(lines), len(ids)


def make_input(n: int) -> str:
    path = os.path.join(WORKDIR, f"lines-{n}.txt")
    if not os.path.exists(path):
        pad = "x" * (PAYLOAD - 8)
        with open(path, "w") as f:
            f.writelines(f"{i:08d}{pad}\n" for i in range(n))
    return path


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- 1. single publish


def bench_single(qos: int) -> dict[str, list[float]]:
    topic = fresh_prefix() + "/single"
    times: dict[str, list[float]] = {t: [] for t in TOOLS}
    argv = {t: pub_argv(t, topic, qos, "hello") for t in TOOLS}
    for t in TOOLS:  # warm the page cache and the broker
        for _ in range(3):
            run_checked(argv[t])
    # posix_spawn and waitpid, not subprocess.run: subprocess's pipes and communicate() add a
    # millisecond of the harness's own work to every run, the same for both tools, which
    # squeezes the ratio towards 1. stderr goes to a file, read only on a failure.
    devnull = os.open(os.devnull, os.O_RDWR)
    err_path = os.path.join(WORKDIR, "single.stderr")
    err_fd = os.open(err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
               (os.POSIX_SPAWN_DUP2, err_fd, 2)]
    try:
        for i in range(RUNS):
            order = TOOLS if i % 2 == 0 else TOOLS[::-1]  # alternate, so drift hits both alike
            for t in order:
                t0 = time.perf_counter()
                pid = os.posix_spawn(argv[t][0], argv[t], os.environ, file_actions=actions)
                _, status = waitpid_bounded(pid, WAIT)
                dt = time.perf_counter() - t0
                code = os.waitstatus_to_exitcode(status)
                if code != 0:
                    os.lseek(err_fd, 0, os.SEEK_SET)
                    err = os.read(err_fd, 4096).decode(errors="replace").strip()
                    raise Failure(f"{t} single publish exit {code}: {err}")
                times[t].append(dt)
    finally:
        os.close(devnull)
        os.close(err_fd)
    return times


def waitpid_bounded(pid: int, timeout: float) -> tuple[int, int]:
    """waitpid, but a child still running after `timeout` is killed and reported."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise Failure(f"timed out after {timeout} s: pid {pid}")
    return os.waitpid(pid, 0)


# ----------------------------------------------------------------------------- 2. pub -l


@dataclass
class PubRun:
    rate: float | None  # end-to-end messages/s (None when messages were lost at QoS 1)
    received: int
    distinct: int
    seconds: float
    client_cpu: float
    exit_code: int


def make_capture(n: int) -> tuple[str, str]:
    """(path, topic) of n records exactly as `mqttcli sub --json` writes them, of the lines of
    make_input(n), recorded once per run of the harness."""
    path = os.path.join(WORKDIR, f"capture-{n}.jsonl")
    topic_file = path + ".topic"
    if not os.path.exists(topic_file):
        topic = fresh_prefix() + "/data"
        cid = "bench-record-" + topic.replace("/", "-")
        with open(path, "wb") as out:
            sub = spawn(sub_argv("mqttcli", topic, 0, n, WAIT) + ["--json", "-i", cid], stdin=subprocess.DEVNULL,
                        stdout=out, stderr=subprocess.PIPE)
            wait_subscribed(cid, topic)
            with open(make_input(n), "rb") as stdin:  # mqttcli: the loader that loses nothing
                run_checked(pub_argv("mqttcli", topic, 0, lines=True), stdin=stdin)
            code, _ = reap(sub, WAIT)
        if code != 0:
            raise Failure(f"recording the capture: mqttcli sub --json -C {n} exited {code}")
        with open(topic_file, "w") as f:
            f.write(topic)
    with open(topic_file) as f:
        return path, f.read()


def one_pub_lines(tool: str, qos: int, n: int, extra: tuple[str, ...] = (), jsonl: bool = False) -> PubRun:
    prefix = fresh_prefix()
    put_marker(prefix)
    argv = pub_argv(tool, f"{prefix}/data", qos, lines=True) + list(extra)
    source = make_input(n)
    if jsonl:
        # The capture, its topic moved under this run's prefix; replayed as recorded (QoS 0).
        capture, recorded = make_capture(n)
        with open(capture, "rb") as f:
            data = f.read().replace(f'"topic":"{recorded}"'.encode(), f'"topic":"{prefix}/data"'.encode())
        source = os.path.join(WORKDIR, "replay.jsonl")
        with open(source, "wb") as f:
            f.write(data)
        argv[argv.index("-l")] = "--jsonl"
    # The one counting subscriber for both tools: mosquitto_sub at QoS 1 (so QoS 1 publishes
    # are delivered at QoS 1, QoS 0 ones at QoS 0), writing to a pipe that this script reads.
    sub, counter = start_subscriber("mosquitto", prefix, 1, n, WAIT)
    with open(source, "rb") as stdin:
        t0 = time.monotonic()
        pub = spawn(argv, stdin=stdin,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        code, cpu = reap(pub, WAIT)
    t_pub = time.monotonic()
    # All in, or (publisher done and) nothing new for QUIET seconds, or WAIT overall.
    while not counter.done.is_set():
        seen = counter.lines
        counter.done.wait(QUIET)
        if counter.lines == seen or time.monotonic() - t0 > WAIT:
            break
    kill(sub)
    counter.eof.wait(5)
    clear_marker(prefix)
    received, distinct = check_unique(counter)
    seconds = (counter.t_last - t0) if received else (t_pub - t0)
    complete = distinct == n
    rate = received / seconds if received and (complete or qos == 0) else None
    return PubRun(rate, received, distinct, seconds, cpu, code)


def bench_pub_lines(qos: int, n: int) -> dict[str, list[PubRun]]:
    out: dict[str, list[PubRun]] = {t: [] for t in TOOLS}
    for i in range(REPEATS):
        for t in (TOOLS if i % 2 == 0 else TOOLS[::-1]):
            r = one_pub_lines(t, qos, n)
            log(f"  pub -l q{qos} n={n} {t:9s}: {r.received}/{n} received ({r.distinct} distinct), "
                f"{r.seconds:.2f} s, {'%.0f msg/s' % r.rate if r.rate else 'no rate'}, exit {r.exit_code}")
            out[t].append(r)
    return out


# ----------------------------------------------------------------------------- 3. sub


@dataclass
class SubRun:
    rate: float
    received: int
    distinct: int
    seconds: float
    client_cpu: float
    broker_cpu: float
    exit_code: int
    switches: int = 0  # the subscriber's context switches, voluntary and involuntary


def one_sub(tool: str, n: int, pub_qos: int = 0) -> SubRun:
    prefix = fresh_prefix()
    put_marker(prefix)
    sub, counter = start_subscriber(tool, prefix, SUB_QOS, n, WAIT)
    with open(make_input(n), "rb") as stdin:
        b0 = broker_cpu()
        t0 = time.monotonic()
        pub = spawn(pub_argv(SUB_PUBLISHER, f"{prefix}/data", pub_qos, lines=True), stdin=stdin,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        counter.done.wait(WAIT)
        b1 = broker_cpu()
        pcode, _ = reap(pub, WAIT)
    if not counter.done.is_set() or counter.lines < n + 1:
        kill(sub)
        raise Failure(f"{tool} sub received {max(counter.lines - 1, 0)} of {n} within {WAIT} s "
                      f"(publisher exit {pcode})")
    code, ru, _ = reap_ru(sub, WAIT)
    counter.eof.wait(5)
    clear_marker(prefix)
    if pcode != 0:
        raise Failure(f"the publisher exited {pcode}")
    received, distinct = check_unique(counter)
    seconds = counter.t_last - t0
    return SubRun(received / seconds, received, distinct, seconds, ru.ru_utime + ru.ru_stime, b1 - b0,
                  code, ru.ru_nvcsw + ru.ru_nivcsw)


@dataclass
class Streamed:
    """A subscriber's run of `stream_to`: its exit, its resource use, when the stream started
    and when the subscriber exited, and the broker's CPU in between."""
    code: int
    ru: object
    t0: float
    t_exit: float
    broker_cpu: float


def stream_to(sub: subprocess.Popen, what: str, topic: str, n: int) -> Streamed:
    """The fixed publisher (`mosquitto_pub -l -q 0`) sends `n` lines to `topic` while `sub`,
    subscribed, receives them and exits; a failure of either is raised, with `what` for the
    subscriber."""
    with open(make_input(n), "rb") as stdin:
        b0 = broker_cpu()
        t0 = time.monotonic()
        pub = spawn(pub_argv(SUB_PUBLISHER, topic, 0, lines=True), stdin=stdin,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        code, ru, t_exit = reap_ru(sub, WAIT)
        b1 = broker_cpu()
        pcode, _ = reap(pub, WAIT)
    if code != 0:
        raise Failure(f"{what} exited {code}: {sub.stderr.read().decode(errors='replace').strip()}")
    if pcode != 0:
        raise Failure(f"the publisher exited {pcode}")
    return Streamed(code, ru, t0, t_exit, b1 - b0)


def one_sub_common(tool: str, n: int, devnull: bool) -> SubRun:
    """The case people type: `sub -t T -C N`, QoS 0, one exact topic, nothing retained on it,
    the output to a pipe (read here) or to /dev/null. `-i` only names the client, so that the
    broker's SUBSCRIBE log line tells when it is subscribed."""
    prefix = fresh_prefix()
    topic = f"{prefix}/data"
    cid = "bench-sub-" + prefix.replace("/", "-")
    sink = subprocess.DEVNULL if devnull else subprocess.PIPE
    sub = spawn(sub_argv(tool, topic, 0, n, WAIT) + ["-i", cid], stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.PIPE)
    counter = None if devnull else LineCounter(sub, n, marker=False)
    wait_subscribed(cid, topic)
    # -C N: the subscriber exits once it has printed N messages.
    r = stream_to(sub, f"{tool} sub -C {n}", topic, n)
    if counter is None:
        received = distinct = n  # it exited 0 after -C N
        seconds = r.t_exit - r.t0
    else:
        counter.eof.wait(5)
        received, distinct = check_unique(counter)
        seconds = counter.t_last - r.t0
    return SubRun(received / seconds, received, distinct, seconds, r.ru.ru_utime + r.ru.ru_stime,
                  r.broker_cpu, r.code, r.ru.ru_nvcsw + r.ru.ru_nivcsw)


def nullsub(n: int, prefix: str, filt: str, *extra: str) -> subprocess.Popen:
    """bench/nullsub.py counting `n` messages of the fixed publisher's to `prefix`/data."""
    size = len(packet(0x30, mqtt_str(f"{prefix}/data".encode()) + b"x" * PAYLOAD))
    return spawn([sys.executable, NULLSUB, "-h", HOST, "-p", PORT, "-t", filt,
                  "-i", "bench-null-" + prefix.replace("/", "-"), "-n", str(n), "--size", str(size),
                  "--wait", str(WAIT), *extra],
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def nullsub_run(sub: subprocess.Popen, prefix: str, n: int) -> SubRun:
    r = stream_to(sub, "nullsub.py", f"{prefix}/data", n)
    seconds = r.t_exit - r.t0
    return SubRun(n / seconds, n, n, seconds, r.ru.ru_utime + r.ru.ru_stime, r.broker_cpu, r.code,
                  r.ru.ru_nvcsw + r.ru.ru_nivcsw)


def one_sub_ceiling(n: int) -> SubRun:
    """The case of `one_sub_common` to /dev/null with bench/nullsub.py as the subscriber: one
    that only reads (1 MiB at a time, 1 ms apart) and parses and prints nothing. What it
    receives per second is what the broker delivers here to a subscriber that costs nothing."""
    prefix = fresh_prefix()
    sub = nullsub(n, prefix, f"{prefix}/data")
    wait_subscribed("bench-null-" + prefix.replace("/", "-"), f"{prefix}/data")
    return nullsub_run(sub, prefix, n)


def one_sub_marker_ceiling(n: int) -> SubRun:
    """The case of `one_sub` (3b) with bench/nullsub.py as the subscriber: QoS 1 on `T/#`, the
    retained marker acknowledged, then the same live stream read and not parsed; to its exit."""
    prefix = fresh_prefix()
    put_marker(prefix)
    sub = nullsub(n, prefix, f"{prefix}/#", "--qos", "1", "--marker")
    ready, _, _ = select.select([sub.stdout], [], [], WAIT)
    if not ready or sub.stdout.readline().strip() != b"ready":
        kill(sub)
        raise Failure(f"nullsub.py never received the marker within {WAIT} s")
    try:
        return nullsub_run(sub, prefix, n)
    finally:
        clear_marker(prefix)


CEILING = "ceiling"  # bench/nullsub.py, beside the two tools in the /dev/null case and in 3b
NULLSUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nullsub.py")


def alternate_subs(label: str, run, tools: tuple[str, ...] = TOOLS) -> dict[str, list[SubRun]]:
    """REPEATS runs of `run(tool)` per tool, the tools alternating so drift hits all alike."""
    out: dict[str, list[SubRun]] = {t: [] for t in tools}
    for i in range(REPEATS):
        for t in (tools if i % 2 == 0 else tools[::-1]):
            r = run(t)
            log(f"  {label} {t:9s}: {r.received} received ({r.distinct} distinct), {r.seconds:.2f} s, "
                f"{r.rate:.0f} msg/s, client CPU {r.client_cpu:.2f} s, {r.switches} context switches, "
                f"broker CPU {r.broker_cpu:.2f} s, exit {r.exit_code}")
            out[t].append(r)
    return out


def bench_sub_common(n: int, devnull: bool) -> dict[str, list[SubRun]]:
    if devnull:
        return alternate_subs(f"sub -t T -C {n} > /dev/null",
                              lambda t: one_sub_ceiling(n) if t == CEILING else one_sub_common(t, n, True),
                              TOOLS + (CEILING,))
    return alternate_subs(f"sub -t T -C {n} > pipe", lambda t: one_sub_common(t, n, False))


# The fixed publisher for the `sub` runs: mosquitto_pub -l at QoS 0 (its QoS 1 -l mode loses
# messages past 65535 lines); subscribers ask for QoS 1, so delivery is at QoS 0.
SUB_PUBLISHER = "mosquitto"
SUB_PUB_QOS = 0
SUB_QOS = 1


def bench_sub(n: int, pub_qos: int = SUB_PUB_QOS, ceiling: bool = False) -> dict[str, list[SubRun]]:
    if ceiling:
        return alternate_subs(f"sub n={n} q{pub_qos}",
                              lambda t: one_sub_marker_ceiling(n) if t == CEILING else one_sub(t, n, pub_qos),
                              TOOLS + (CEILING,))
    return alternate_subs(f"sub n={n} q{pub_qos}", lambda t: one_sub(t, n, pub_qos))


def one_drain(tool: str, n: int) -> SubRun:
    """A backlog of n QoS 1 messages queued by the broker for an offline persistent session,
    then drained by the subscriber: its own limit, on the QoS 1 path (a PUBACK per message),
    whatever any publisher's speed."""
    prefix = fresh_prefix()
    cid = "bench-drain-" + prefix.replace("/", "-")
    filt = f"{prefix}/#"
    run_checked(sub_argv(tool, filt, 1, None, WAIT) + ["-c", "-i", cid, "-E"])
    with open(make_input(n), "rb") as stdin:  # the loader: the one tool whose -l keeps QoS 1
        run_checked(pub_argv("mqttcli", f"{prefix}/data", 1, lines=True), stdin=stdin)
    b0 = broker_cpu()
    t0 = time.monotonic()
    sub = spawn(sub_argv(tool, filt, 1, n, WAIT) + ["-c", "-i", cid], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    counter = LineCounter(sub, n, marker=False)
    counter.done.wait(WAIT)
    b1 = broker_cpu()
    if counter.lines < n:
        kill(sub)
        raise Failure(f"{tool} sub drained {counter.lines} of {n} queued messages within {WAIT} s")
    code, ru, _ = reap_ru(sub, WAIT)
    cpu = ru.ru_utime + ru.ru_stime
    counter.eof.wait(5)
    # The emptied session stays in the private broker until it stops: discarding it with a
    # clean-session connect could race the broker's reading of the old connection's DISCONNECT.
    received, distinct = check_unique(counter)
    seconds = counter.t_last - t0
    return SubRun(received / seconds, received, distinct, seconds, cpu, b1 - b0, code,
                  ru.ru_nvcsw + ru.ru_nivcsw)


def bench_drain(n: int) -> dict[str, list[SubRun]]:
    return alternate_subs(f"drain n={n}", lambda t: one_drain(t, n))


# ----------------------------------------------------------------------------- 4. latency


class RawPublisher:
    """A minimal MQTT 3.1.1 publisher on a plain socket, the same for every subscriber under
    test: it adds no client library's own delays or batching to what is measured."""

    def __init__(self, client_id: str):
        self.sock = socket.create_connection((HOST, int(PORT)), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = mqtt_str(b"MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + mqtt_str(client_id.encode())
        self.sock.sendall(packet(0x10, body))
        connack = self._recv_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise Failure(f"raw publisher: CONNACK {connack!r}")

    def _recv_exact(self, n: int) -> bytes:
        b = b""
        while len(b) < n:
            chunk = self.sock.recv(n - len(b))
            if not chunk:
                raise Failure("raw publisher: the broker closed the connection")
            b += chunk
        return b

    @staticmethod
    def publish_packet(topic: str, payload: bytes) -> bytes:
        return packet(0x30, mqtt_str(topic.encode()) + payload)  # QoS 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.sendall(bytes([0xE0, 0]))  # DISCONNECT
        finally:
            self.sock.close()


def one_latency(tool: str) -> list[float]:
    """Publish-to-print latency of lone messages, in µs: one message, wait until its line is
    read from the subscriber's stdout, pause LAT_GAP_MS, the next. Each payload carries its
    send time; the same Python process reads the line, so both ends use one clock."""
    prefix = fresh_prefix()
    topic = f"{prefix}/lat"
    cid = "bench-lat-" + prefix.replace("/", "-")
    sub = spawn(sub_argv(tool, topic, 0, None, WAIT + LAT_MSGS * (LAT_GAP_MS + 50) // 1000) + ["-i", cid],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[tuple[int, bytes]] = queue.Queue()

    def reader() -> None:
        for line in sub.stdout:  # buffered: readline returns as soon as a whole line is there
            lines.put((time.perf_counter_ns(), line))

    threading.Thread(target=reader, daemon=True).start()
    wait_subscribed(cid, topic)
    pub = RawPublisher(cid + "-pub")
    out: list[float] = []
    try:
        for i in range(LAT_MSGS):
            sent = time.perf_counter_ns()
            pub.send(RawPublisher.publish_packet(topic, f"{sent:020d}".encode().ljust(PAYLOAD, b"x")))
            try:
                got, line = lines.get(timeout=WAIT)
            except queue.Empty:
                raise Failure(f"{tool}: message {i} not printed within {WAIT} s")
            if not line.startswith(f"{sent:020d}".encode()):
                raise Failure(f"{tool}: expected message {i}, got {line[:40]!r}")
            out.append((got - sent) / 1000)
            time.sleep(LAT_GAP_MS / 1000)
    finally:
        pub.close()
        kill(sub)
    return out


def part_latency(rep: Report) -> None:
    log(f"[latency] publish-to-print of {LAT_MSGS} lone QoS 0 messages, {LAT_GAP_MS} ms apart, "
        f"sub -t T to a pipe")
    lat: dict[str, list[float]] = {}
    for t in TOOLS:
        one_latency(t)  # warm-up run, not counted: page cache, broker, CPU frequency
    for t in TOOLS:
        lat[t] = one_latency(t)
        rep.detail(f"latency, {t}: p50 {pct(lat[t], .5):.0f} µs, p90 {pct(lat[t], .9):.0f}, "
                   f"p99 {pct(lat[t], .99):.0f}, max {max(lat[t]):.0f} (n={len(lat[t])})")
    for q, name in ((.5, "p50"), (.99, "p99")):
        rep.row(Row(f"lone message, publish → printed line: {name}", "µs", pct(lat["mqttcli"], q),
                    pct(lat["mosquitto"], q), fmt="{:.0f}",
                    note=f"{LAT_MSGS} messages, {LAT_GAP_MS} ms apart, from a raw-socket publisher"
                    )).ratio_target("≤", 1.0)


# ----------------------------------------------------------------------------- 5. cost as the work grows


@dataclass
class ScaleRun:
    seconds: float
    cpu: float
    max_rss_kb: int
    exit_code: int


GNU_TIME = shutil.which("time") or "/usr/bin/time"


def peak_rss_argv(argv: list[str], out: str) -> list[str]:
    """argv run under GNU time, which writes the peak RSS (KiB) to `out`. Not wait4's ru_maxrss
    of a child of this script: Linux carries the forking process's peak across exec, so every
    figure would read as at least this Python process's size."""
    return [GNU_TIME, "-f", "%M", "-o", out] + argv


def read_peak_rss(out: str) -> int:
    with open(out) as f:
        return int(f.read().split()[-1])


def sub_until_exit(tool: str, filt: str, qos: int, n: int, feed, devnull: bool = True) -> ScaleRun:
    """`sub -t FILT -q QOS -C N`, subscribed (broker log), then `feed()` publishes; the run ends
    when the subscriber exits after N messages."""
    cid = "bench-scale-" + fresh_prefix().replace("/", "-")
    limit = WAIT + n // 20_000  # ten million messages take a minute or two
    rss_file = os.path.join(WORKDIR, "sub.rss")
    sub = spawn(peak_rss_argv(sub_argv(tool, filt, qos, n, limit) + ["-i", cid], rss_file), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if devnull else subprocess.PIPE, stderr=subprocess.PIPE)
    counter = None if devnull else LineCounter(sub, n, marker=False)
    wait_subscribed(cid, filt)
    t0 = time.monotonic()
    feed()
    code, ru, t_exit = reap_ru(sub, limit)
    if code != 0:
        raise Failure(f"{tool} sub -C {n} exited {code}: {sub.stderr.read().decode(errors='replace').strip()}")
    if counter is not None:
        counter.eof.wait(5)
        if counter.lines != n:
            raise Failure(f"{tool} sub printed {counter.lines} of {n} lines")
    return ScaleRun(t_exit - t0, ru.ru_utime + ru.ru_stime, read_peak_rss(rss_file), code)


def feed_lines(topic: str, n: int) -> None:
    """n lines through `mqttcli pub -l -q 0`, made on the fly (10 million would be a 650 MB
    file). Not mosquitto_pub: fed 10 million lines, 2.0.11 delivered about 7.2 million of them
    and exited 0 (the broker logged no drops), and the subscriber waited for the rest."""
    pub = spawn(pub_argv("mqttcli", topic, 0, lines=True), stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    block = b"".join(f"{i:08d}".encode() + b"x" * (PAYLOAD - 8) + b"\n" for i in range(1000))
    try:
        for _ in range(n // 1000):
            pub.stdin.write(block)
        pub.stdin.write(block[: (n % 1000) * (PAYLOAD + 1)])
        pub.stdin.close()
    except BrokenPipeError:
        pass
    code, _ = reap(pub, WAIT + n // 20_000)
    if code != 0:
        raise Failure(f"mqttcli pub -l (the loader) exited {code}")


def part_scale(rep: Report) -> None:
    # Peak RSS as the message count grows: nothing may be kept per message.
    runs: dict[int, ScaleRun] = {}
    for n in SCALE_MSGS:
        log(f"[scale] mqttcli sub -t T -C {n} > /dev/null, live from mqttcli pub -l -q 0")
        topic = fresh_prefix() + "/data"
        runs[n] = sub_until_exit("mqttcli", topic, 0, n, lambda: feed_lines(topic, n))
        r = runs[n]
        rep.detail(f"sub -C {n}, mqttcli: {r.seconds:.1f} s ({n / r.seconds:.0f} msg/s), CPU {r.cpu:.2f} s, "
                   f"peak RSS {r.max_rss_kb} KiB")
    if len(runs) >= 2:
        lo, hi = min(runs), max(runs)
        row = rep.row(Row(f"sub peak RSS, {lo} → {hi} msgs (mqttcli)", "KiB", runs[hi].max_rss_kb,
                          runs[lo].max_rss_kb, fmt="{:.0f}",
                          note=f"the mosquitto column is mqttcli at {lo} messages; ru_maxrss"))
        row.ratio_target("≤", 1.1)

    # One payload of BIG_MB MiB (less 1 KiB of headroom under the broker's packet limit).
    size = BIG_MB * 1024 * 1024 - 1024
    big = os.path.join(WORKDIR, "big.bin")
    if not os.path.exists(big) or os.path.getsize(big) != size:
        with open(big, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.write(chunk[: size % len(chunk)])
    peak: dict[str, tuple[int, int]] = {}
    for t in TOOLS:
        log(f"[scale] one {size} byte payload, QoS 1: {t} pub -f and sub -C 1 > /dev/null")
        topic = fresh_prefix() + "/big"
        pub_rss = []

        def feed() -> None:
            argv = pub_argv(t, topic, 1)
            argv[argv.index("-m"):argv.index("-m") + 2] = ["-f", big]
            rss_file = os.path.join(WORKDIR, "pub.rss")
            p = spawn(peak_rss_argv(argv, rss_file), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE)
            code, _ = reap(p, WAIT)
            if code != 0:
                raise Failure(f"{t} pub -f exited {code}: {p.stderr.read().decode(errors='replace').strip()}")
            pub_rss.append(read_peak_rss(rss_file))

        r = sub_until_exit(t, topic, 1, 1, feed)
        peak[t] = (pub_rss[0], r.max_rss_kb)
        rep.detail(f"{size} byte payload, {t}: pub peak RSS {pub_rss[0]} KiB, sub peak RSS {r.max_rss_kb} KiB, "
                   f"{r.seconds:.1f} s publish to exit")
    payload_kb = size / 1024
    for i, what in ((0, "pub -f"), (1, "sub")):
        row = rep.row(Row(f"{BIG_MB} MB payload: {what} peak RSS", "KiB", peak["mqttcli"][i], peak["mosquitto"][i],
                          fmt="{:.0f}", note=f"target on mqttcli's own figure: ≤ 2 × the payload ({2 * payload_kb:.0f} KiB)"))
        row.target = "mqttcli ≤ 2 × payload"
        row.met = peak["mqttcli"][i] <= 2 * payload_kb

    # Many distinct topics through one subscription.
    stats: dict[str, ScaleRun] = {}
    for t in TOOLS:
        log(f"[scale] {TOPICS} distinct topics through one {t} sub to a pipe")
        prefix = fresh_prefix()
        packets = b"".join(RawPublisher.publish_packet(f"{prefix}/t/{i}", f"{i:08d}".encode().ljust(PAYLOAD, b"x"))
                           for i in range(TOPICS))

        def feed() -> None:
            pub = RawPublisher("bench-topics-" + prefix.replace("/", "-"))
            try:
                pub.send(packets)
            finally:
                pub.close()

        stats[t] = sub_until_exit(t, f"{prefix}/t/#", 0, TOPICS, feed, devnull=False)
        rep.detail(f"{TOPICS} topics, {t}: {stats[t].seconds:.2f} s, CPU {stats[t].cpu:.2f} s, "
                   f"peak RSS {stats[t].max_rss_kb} KiB")
    rep.row(Row(f"{TOPICS} distinct topics, one sub: CPU per msg", "µs", stats["mqttcli"].cpu / TOPICS * 1e6,
                stats["mosquitto"].cpu / TOPICS * 1e6, fmt="{:.2f}"))
    rep.row(Row(f"{TOPICS} distinct topics, one sub: peak RSS", "KiB", stats["mqttcli"].max_rss_kb,
                stats["mosquitto"].max_rss_kb, fmt="{:.0f}"))


# ----------------------------------------------------------------------------- 6. idle RSS, size


def bench_rss() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {t: [] for t in TOOLS}
    for i in range(RSS_RUNS):
        for t in (TOOLS if i % 2 == 0 else TOOLS[::-1]):
            prefix = fresh_prefix()
            put_marker(prefix)
            sub, counter = start_subscriber(t, prefix, 1, None, WAIT)
            time.sleep(1.0)
            hwm = proc_status_kb(sub.pid, "VmHWM")
            sub.send_signal(signal.SIGTERM)
            reap(sub, 10)
            clear_marker(prefix)
            out[t].append(hwm)
    return out


def lib_path(exe: str, name: str) -> str | None:
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(rf"{re.escape(name)}\S*\s*=>\s*(\S+)", out)
    return os.path.realpath(m.group(1)) if m else None


def as_if_installed(paths: list[str]) -> None:
    """Writes back and evicts these files' pages from the page cache, so that the next run reads
    them from disk as an installed program is read. Right after run.sh copied the binary its
    pages sit in the cache as they were written, and the kernel then maps more of a binary's
    code per fault: the same mqttcli peaked at 5.8-6.0 MB idle from a fresh copy and at
    5.3-5.5 MB once read back from disk (BENCHMARKS.md, known limits)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------- report


@dataclass
class Row:
    what: str
    unit: str
    mqttcli: float | None
    mosq: float | None
    fmt: str = "{:.1f}"
    note: str = ""
    target: str = ""  # as shown, e.g. "ratio ≥ 1.0"
    met: bool | None = None  # None: no target, or not measurable in this run

    @property
    def ratio(self) -> float | None:
        if self.mqttcli is None or self.mosq is None or self.mosq == 0:
            return None
        return self.mqttcli / self.mosq

    def ratio_target(self, op: str, limit: float) -> "Row":
        self.target = f"ratio {op} {limit}"
        r = self.ratio
        self.met = None if r is None else (r <= limit if op == "≤" else r >= limit)
        return self

    def cells(self) -> list[str]:
        f = lambda v: "n/a" if v is None else self.fmt.format(v)
        r = self.ratio
        status = "" if not self.target else ("**met**" if self.met else "**NOT met**" if self.met is False
                                             else "**n/a**")
        return [self.what, self.unit, f(self.mqttcli), f(self.mosq), "n/a" if r is None else f"{r:.2f}",
                f"{self.target}: {status}" if self.target else "", self.note]


HEAD = ["measure", "unit", "mqttcli", "mosquitto", "ratio", "target", "note"]


def render_md(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * len(HEAD)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r.cells()) + " |")
    return "\n".join(out)


def render_text(rows: list[Row]) -> str:
    cells = [HEAD] + [[c.replace("**", "") for c in r.cells()] for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(HEAD))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w[i]) if i in (0, 1, 5, 6) else x.rjust(w[i]) for i, x in enumerate(c)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * x for x in w))
    return "\n".join(lines)


def first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (p.stdout + p.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mosq_line = next((l for l in subprocess.run([MOSQ_PUB, "--help"], capture_output=True, text=True,
                                                timeout=10).stdout.splitlines() if "version" in l), "?")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "mqttcli": first_line([MQTTCLI, "--version"]),
        "mosquitto": mosq_line.strip().rstrip("."),
        "broker": first_line(["mosquitto", "-h"]) if shutil.which("mosquitto") else first_line(["/usr/sbin/mosquitto", "-h"]),
        "rustc": first_line(["rustc", "--version"]),
        "python": platform.python_version(),
    }


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.details: list[str] = []
        self.failures: list[str] = []
        self.others = ""

    def row(self, r: Row) -> Row:
        self.rows.append(r)
        return r

    def detail(self, text: str) -> None:
        self.details.append(text)
        log("  = " + text)


def part_single(rep: Report) -> None:
    for qos in (0, 1):
        log(f"[single] one publish, QoS {qos}: {RUNS} runs per tool, alternating")
        t = bench_single(qos)
        m = {k: med(v) * 1000 for k, v in t.items()}
        rep.row(Row(f"single publish QoS {qos}: start → exit (median of {RUNS})", "ms", m["mqttcli"],
                    m["mosquitto"], fmt="{:.2f}")).ratio_target("≤", 1.0)
        for k in TOOLS:
            v = [x * 1000 for x in t[k]]
            rep.detail(f"single publish QoS {qos}, {k}: median {med(v):.2f} ms, p10 {pct(v, .1):.2f}, "
                       f"p90 {pct(v, .9):.2f}, min {min(v):.2f}, max {max(v):.2f} (n={len(v)})")


def part_pub(rep: Report) -> None:
    def case(qos: int, n: int, target: bool) -> None:
        log(f"[pub] pub -l, QoS {qos}, {n} lines of {PAYLOAD} bytes: {REPEATS} runs per tool")
        r = bench_pub_lines(qos, n)
        meds: dict[str, float | None] = {}
        notes = []
        for k in TOOLS:
            runs = r[k]
            complete = all(x.distinct == n for x in runs)
            rates = [x.rate for x in runs]
            meds[k] = med(rates) if all(x is not None for x in rates) else None
            recv = ", ".join(str(x.distinct) for x in runs)
            codes = ", ".join(str(x.exit_code) for x in runs)
            rep.detail(f"pub -l QoS {qos} n={n}, {k}: " +
                       ", ".join("lost" if x.rate is None else f"{x.rate:.0f}" for x in runs) +
                       f" msg/s; distinct messages received: {recv}; exit codes {codes}; "
                       f"publisher CPU (median) {med([x.client_cpu for x in runs]):.2f} s")
            if not complete:
                notes.append(f"{'mosquitto_pub' if k == 'mosquitto' else k} delivered {recv} of {n}, exit {codes}")
                if qos == 1 and k == "mqttcli":
                    rep.failures.append(f"pub -l QoS 1 n={n}: mqttcli lost messages ({recv} of {n} arrived)")
            if k == "mqttcli" and any(x.exit_code != 0 for x in runs):
                rep.failures.append(f"pub -l QoS {qos} n={n}: mqttcli exit codes {codes}")
        row = rep.row(Row(f"pub -l QoS {qos}, {n} msgs: end-to-end", "msg/s", meds["mqttcli"],
                          meds["mosquitto"], fmt="{:.0f}", note="; ".join(notes)))
        if target:
            row.ratio_target("≥", 1.0)

    case(0, LINES, True)
    case(1, LINES, SMALL_LINES == LINES)
    if SMALL_LINES != LINES:
        case(1, SMALL_LINES, True)
    case(2, SMALL_LINES, True)

    # pub --jsonl against pub -l, both mqttcli, the same 200 000 payloads: JSON must not become
    # the bottleneck.
    log(f"[pub] mqttcli pub --jsonl of a sub --json capture of {LINES} messages against pub -l: "
        f"{REPEATS} runs each, alternating")
    runs: dict[str, list[PubRun]] = {"jsonl": [], "lines": []}
    for i in range(REPEATS):
        for kind in (("jsonl", "lines") if i % 2 == 0 else ("lines", "jsonl")):
            r = one_pub_lines("mqttcli", 0, LINES, jsonl=kind == "jsonl")
            log(f"  pub {'--jsonl' if kind == 'jsonl' else '-l'} n={LINES}: {r.distinct}/{LINES} distinct, "
                f"{'%.0f msg/s' % r.rate if r.rate else 'no rate'}, CPU {r.client_cpu:.2f} s, exit {r.exit_code}")
            runs[kind].append(r)
    for kind, rs in runs.items():
        rep.detail(f"pub {'--jsonl' if kind == 'jsonl' else '-l'} QoS 0 n={LINES}, mqttcli: " +
                   ", ".join("lost" if x.rate is None else f"{x.rate:.0f}" for x in rs) +
                   " msg/s; publisher CPU " + ", ".join(f"{x.client_cpu:.2f}" for x in rs) + " s")
        if any(x.exit_code != 0 for x in rs):
            rep.failures.append(f"pub {kind}: mqttcli exit codes {[x.exit_code for x in rs]}")
    rates = {k: [x.rate for x in rs] for k, rs in runs.items()}
    meds = {k: med(v) if all(x is not None for x in v) else None for k, v in rates.items()}
    rep.row(Row(f"pub --jsonl, {LINES} msgs, against pub -l", "msg/s", meds["jsonl"], meds["lines"], fmt="{:.0f}",
                note="both mqttcli: the mosquitto column is `pub -l` of the same payloads")).ratio_target("≥", 0.8)

    # How each scales with the in-flight window (-M, the same spelling for both tools).
    for qos in (1, 2):
        log(f"[pub] pub -l -q {qos} -M W, {WINDOW_LINES} lines, W in {WINDOWS}: one run per tool and window")
        for w in WINDOWS:
            r = {t: one_pub_lines(t, qos, WINDOW_LINES, ("-M", str(w))) for t in TOOLS}
            for t in TOOLS:
                if r[t].distinct != WINDOW_LINES and t == "mqttcli":
                    rep.failures.append(f"pub -l QoS {qos} -M {w}: mqttcli delivered {r[t].distinct} of {WINDOW_LINES}")
            rep.row(Row(f"pub -l QoS {qos} -M {w}, {WINDOW_LINES} msgs", "msg/s", r["mqttcli"].rate, r["mosquitto"].rate,
                        fmt="{:.0f}", note="one run each"))


def sub_rows(rep: Report, label: str, s: dict[str, list[SubRun]], n: int, targets: bool) -> None:
    rate = {k: med([x.rate for x in s[k]]) for k in TOOLS}
    ccpu = {k: med([x.client_cpu for x in s[k]]) for k in TOOLS}
    bcpu = {k: med([x.broker_cpu for x in s[k]]) for k in TOOLS}
    # client CPU ÷ broker CPU within each run, then the median over the runs
    share = {k: med([x.client_cpu / x.broker_cpu if x.broker_cpu else float("inf") for x in s[k]]) for k in TOOLS}
    for k in TOOLS:
        if k == "mqttcli" and any(x.distinct != n or x.exit_code != 0 for x in s[k]):
            rep.failures.append(f"{label} {k}: " + ", ".join(f"{x.distinct} of {n} distinct, exit {x.exit_code}"
                                                             for x in s[k]))
        rep.detail(f"{label}, {k}: " + ", ".join(f"{x.rate:.0f}" for x in s[k]) +
                   " msg/s; client CPU " + ", ".join(f"{x.client_cpu:.2f}" for x in s[k]) +
                   " s; context switches " + ", ".join(str(x.switches) for x in s[k]) +
                   "; broker CPU " + ", ".join(f"{x.broker_cpu:.2f}" for x in s[k]) + " s")
    us = lambda v: v / n * 1e6
    r = rep.row(Row(f"{label}: msgs/s", "msg/s", rate["mqttcli"], rate["mosquitto"], fmt="{:.0f}"))
    if targets:
        r.ratio_target("≥", 1.2)
    rep.row(Row(f"{label}: client CPU per msg", "µs", us(ccpu["mqttcli"]), us(ccpu["mosquitto"]), fmt="{:.2f}",
                note="user+sys of the subscriber process (wait4)"))
    sw = {k: med([x.switches for x in s[k]]) for k in TOOLS}
    rep.row(Row(f"{label}: client context switches", "count", sw["mqttcli"], sw["mosquitto"], fmt="{:.0f}",
                note="voluntary + involuntary, of the subscriber process (wait4)"))
    r = rep.row(Row(f"{label}: broker CPU per msg", "µs", us(bcpu["mqttcli"]), us(bcpu["mosquitto"]), fmt="{:.2f}",
                    note="broker's user+sys over the same run, /proc/PID/stat (10 ms ticks)"))
    if targets:
        # Feeding mqttcli must not cost the broker more than feeding mosquitto_sub; 5 % is the
        # resolution of 10 ms ticks over a 2 s run.
        r.ratio_target("≤", 1.05)
    r = rep.row(Row(f"{label}: client CPU ÷ broker CPU", "×", share["mqttcli"], share["mosquitto"], fmt="{:.2f}"))
    if targets:
        r.target = "mqttcli ≤ 0.5"
        r.met = share["mqttcli"] <= 0.5
        r.note = "the target is on mqttcli's own figure, not on the ratio"
    if CEILING in s:
        c = s[CEILING]
        rep.detail(f"{label}, bench/nullsub.py: " + ", ".join(f"{x.rate:.0f}" for x in c) +
                   " msg/s; broker CPU " + ", ".join(f"{x.broker_cpu:.2f}" for x in c) + " s")
        rep.row(Row(f"{label}: msgs/s against a subscriber that only reads", "msg/s", rate["mqttcli"],
                    med([x.rate for x in c]), fmt="{:.0f}",
                    note="the mosquitto column is bench/nullsub.py (reads 1 MiB at a time, 1 ms apart, "
                         "parses and prints nothing): about as much as the broker delivers here"))
        rep.row(Row(f"{label}: broker CPU per msg against a subscriber that only reads", "µs", us(bcpu["mqttcli"]),
                    us(med([x.broker_cpu for x in c])), fmt="{:.2f}",
                    note="the mosquitto column is the broker feeding bench/nullsub.py"))


def part_sub(rep: Report) -> None:
    # The common case first: what people type.
    for devnull in (False, True):
        sink = "/dev/null" if devnull else "a pipe"
        log(f"[sub] sub -t T -C {LINES} (QoS 0, exact topic, nothing retained) to {sink}, live from "
            f"mosquitto_pub -l -q 0: {REPEATS} runs per tool")
        sub_rows(rep, f"sub -t T, {LINES} msgs live, to {sink}", bench_sub_common(LINES, devnull), LINES, True)
    log(f"[sub] sub -t 'T/#' -q 1 to a pipe after a retained QoS 1 marker, {LINES} messages live from "
        f"mosquitto_pub -l -q {SUB_PUB_QOS}: {REPEATS} runs per tool")
    sub_rows(rep, f"sub -q 1 -t 'T/#' after a marker, {LINES} msgs live", bench_sub(LINES, ceiling=True), LINES, True)
    # QoS 1 end to end: every message is acknowledged by the subscriber (mqttcli after it is
    # written). SMALL_LINES: mosquitto_pub's QoS 1 -l mode loses messages past 65535 lines.
    log(f"[sub] sub to a pipe, {SMALL_LINES} messages live from mosquitto_pub -l -q 1, "
        f"subscribers at -q 1: {REPEATS} runs per tool")
    sub_rows(rep, f"sub, {SMALL_LINES} msgs QoS 1 live", bench_sub(SMALL_LINES, 1), SMALL_LINES, False)
    log(f"[sub] sub draining a backlog of {LINES} queued QoS 1 messages: {REPEATS} runs per tool")
    sub_rows(rep, f"sub, {LINES} msgs QoS 1 backlog", bench_drain(LINES), LINES, False)


def part_rss(rep: Report) -> None:
    log(f"[rss] idle sub peak RSS: {RSS_RUNS} runs per tool")
    rss = bench_rss()
    for k in TOOLS:
        rep.detail(f"idle sub VmHWM, {k}: " + ", ".join(f"{x} kB" for x in rss[k]))
    rep.row(Row("idle sub peak RSS (VmHWM)", "KiB", med(rss["mqttcli"]), med(rss["mosquitto"]),
                fmt="{:.0f}", note=f"median of {RSS_RUNS}, read 1 s after subscribing")).ratio_target("≤", 1.5)


class WireCounter:
    """A relay between one client and the broker that frames what the client sends into MQTT
    packets: the PUBLISH packets' bytes exactly as they crossed the socket. Bytes, not time: the
    same command gives the same count on any machine."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.publishes = 0
        self.publish_bytes = 0
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        broker = socket.create_connection((HOST, int(PORT)))
        back = threading.Thread(target=self._copy, args=(broker, client), daemon=True)
        back.start()
        pending = b""
        while True:
            data = client.recv(65536)
            if not data:
                break
            broker.sendall(data)
            pending = self._frame(pending + data)
        broker.shutdown(socket.SHUT_WR)
        back.join(WAIT)
        for s in (client, broker, self.listener):
            s.close()
        self.done.set()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _frame(self, buf: bytes) -> bytes:
        """Counts the whole packets at the start of `buf`; returns the unfinished rest."""
        while len(buf) >= 2:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return buf
                length |= (buf[i] & 0x7F) << shift
                shift += 7
                i += 1
                if buf[i - 1] & 0x80 == 0:
                    break
            size = i + length
            if len(buf) < size:
                return buf
            if buf[0] >> 4 == 3:
                self.publishes += 1
                self.publish_bytes += size
            buf = buf[size:]
        return buf


def wire_bytes(tool: str, extra: list[str]) -> float:
    """Bytes per PUBLISH of a `pub -l -V 5` stream of ALIAS_LINES small messages to ALIAS_TOPIC."""
    relay = WireCounter()
    exe = [MQTTCLI, "pub"] if tool == "mqttcli" else [MOSQ_PUB]
    argv = exe + ["-h", HOST, "-p", str(relay.port), "-V", "5", "-t", ALIAS_TOPIC, "-l"] + extra
    path = os.path.join(WORKDIR, "alias-lines.txt")
    with open(path, "w") as f:
        f.writelines(f'{{"n":{i:06d},"t":21.5}}\n' for i in range(ALIAS_LINES))
    with open(path, "rb") as stdin:
        run_checked(argv, stdin=stdin)
    if not relay.done.wait(WAIT):
        raise Failure(f"the relay did not see the connection end: {' '.join(argv)}")
    if relay.publishes != ALIAS_LINES:
        raise Failure(f"{relay.publishes} PUBLISH packets of {ALIAS_LINES} crossed the relay: {' '.join(argv)}")
    return relay.publish_bytes / relay.publishes


def part_aliases(rep: Report) -> None:
    log(f"[aliases] bytes per PUBLISH of pub -l -V 5, {ALIAS_LINES} messages to a {len(ALIAS_TOPIC)}-character topic")
    mosq = wire_bytes("mosquitto", [])
    what = f"pub -l -V 5 QoS 0, {len(ALIAS_TOPIC)}-char topic, 21-byte payload: bytes per PUBLISH"
    rep.row(Row(what, "bytes", wire_bytes("mqttcli", []), mosq, fmt="{:.1f}",
                note="mqttcli with topic aliases (the default on a stream; Mosquitto offers 10), "
                     "mosquitto_pub sends the topic every time"))
    rep.row(Row(what + " (mqttcli --no-topic-alias)", "bytes", wire_bytes("mqttcli", ["--no-topic-alias"]), mosq,
                fmt="{:.1f}", note="both send the topic every time"))


def part_size(rep: Report) -> None:
    libmosq = lib_path(MOSQ_SUB, "libmosquitto.so")
    lib_size = os.path.getsize(libmosq) if libmosq else 0
    size_cli = os.path.getsize(MQTTCLI)
    kib = lambda b: f"{b / 1024:.0f} KiB"
    r = rep.row(Row("release binary size", "KiB", size_cli / 1024, (os.path.getsize(MOSQ_SUB) + lib_size) / 1024,
                    fmt="{:.0f}",
                    note=f"mosquitto = mosquitto_sub {kib(os.path.getsize(MOSQ_SUB))} + "
                         f"{os.path.basename(libmosq) if libmosq else 'libmosquitto (not found)'} {kib(lib_size)} "
                         f"(mosquitto_pub {kib(os.path.getsize(MOSQ_PUB))}), not counting libcjson, libssl, libcrypto; mqttcli needs only libc and libgcc_s"))
    r.target = "mqttcli ≤ 8 MiB"
    r.met = size_cli <= 8 * 1024 * 1024


def busy_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all CPUs, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def own_seconds() -> float:
    """CPU time of this script, its reaped children and the broker."""
    import resource
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime + broker_cpu()


def main() -> int:
    t_start = time.monotonic()
    busy0, own0 = busy_seconds(), own_seconds()
    info = machine()
    log(f"bench: broker pid {BROKER_PID} on {HOST}:{PORT}; RUNS={RUNS} LINES={LINES} PAYLOAD={PAYLOAD} "
        f"REPEATS={REPEATS} SMALL_LINES={SMALL_LINES} RSS_RUNS={RSS_RUNS} WAIT={WAIT} PARTS={','.join(sorted(PARTS))}")
    rep = Report()
    libmosq = lib_path(MOSQ_SUB, "libmosquitto.so")
    as_if_installed([MQTTCLI, MOSQ_SUB, MOSQ_PUB] + ([libmosq] if libmosq else []))
    for name, part in (("single", part_single), ("pub", part_pub), ("sub", part_sub), ("latency", part_latency),
                       ("rss", part_rss), ("scale", part_scale), ("aliases", part_aliases)):
        if name in PARTS:
            part(rep)
    part_size(rep)

    elapsed = time.monotonic() - t_start
    others = max(0.0, (busy_seconds() - busy0) - (own_seconds() - own0))
    rep.others = (f"other processes used {others:.0f} CPU-seconds during the {elapsed:.0f} s run "
                  f"({others / elapsed:.2f} of {os.cpu_count()} CPUs on average)")
    print()
    print(render_text(rep.rows))
    print()
    for d in rep.details:
        print("  " + d)
    if rep.failures:
        print("\nFAILURES:\n  " + "\n  ".join(rep.failures))
    print(f"\n(measured in {elapsed:.0f} s; {rep.others})")

    record = os.environ.get("BENCH_RECORD_FILE", "")
    if record:
        write_record(record, info, rep, elapsed)
    return 1 if rep.failures else 0


def write_record(path: str, info: dict[str, str], rep: Report, elapsed: float) -> None:
    env = os.environ
    rows, details, failures = rep.rows, rep.details, rep.failures
    met = sum(1 for r in rows if r.target and r.met)
    total = sum(1 for r in rows if r.target)
    load_before = env.get("BENCH_LOAD_BEFORE", "?")
    loaded = env.get("BENCH_LOADED", "")
    parts = [
        f"\n### Run of {env.get('BENCH_DATE', time.strftime('%Y-%m-%d %H:%M:%S %Z'))}\n",
        f"- command: `{env.get('BENCH_COMMAND', 'bench/run.sh')}` (finished in {elapsed:.0f} s of measuring)",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}",
        f"- load average before the run: {load_before}" + (f" — **{loaded}**" if loaded else ""),
        f"- load average after the run: {read_load()} (includes the run itself); {rep.others}",
        f"- versions: {info['mqttcli']} (git {env.get('BENCH_GIT', '?')}), {info['mosquitto']}, "
        f"broker: {info['broker']}, {info['rustc']}, Python {info['python']}",
        f"- settings: RUNS={RUNS} LINES={LINES} PAYLOAD={PAYLOAD} REPEATS={REPEATS} "
        f"SMALL_LINES={SMALL_LINES} RSS_RUNS={RSS_RUNS}",
        f"- targets met: {met} of {total}",
        "",
        render_md(rows),
        "",
        "<details><summary>per-run figures</summary>",
        "",
    ]
    parts += [f"- {d}" for d in details]
    parts += ["", "</details>", ""]
    if failures:
        parts += ["**Failures in this run:**", ""] + [f"- {f}" for f in failures] + [""]
    notes = env.get("BENCH_NOTE", "").strip()
    if notes:
        parts += [f"Note: {notes}", ""]
    exists = os.path.exists(path)
    with open(path, "a") as f:
        if not exists:
            f.write("# Benchmarks\n\nRun with `bench/run.sh`; each run appends a section below.\n\n## Runs\n")
        f.write("\n".join(parts))
    log(f"bench: appended this run to {path}")


def read_load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        kill_all()
