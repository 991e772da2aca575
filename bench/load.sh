#!/usr/bin/env bash
# bench/load.sh: `mqttcli bench` against a private Mosquitto, with the CPU time of the generator
# beside the broker's (from /proc/PID/stat) and the generator's peak RSS (GNU time). Prints
# a Markdown table for BENCHMARKS.md. Settings: BIN (the mqttcli to measure, default
# target/release/mqttcli), N (messages per publisher, 50000), CONNS (idle connections, 10000).
# The `pub` rows are also run with bench/paho_bench.py, a paho-mqtt generator written for the
# comparison (paho-mqtt 2.1.0, installed into .bench/paho on first use; rows skipped, and said
# so, if pip cannot install it). Last, the latency overhead at a low rate: `bench sub` and
# `bench pub --rate 100` of one client each, against the one-way p50 of a raw-socket ping-pong
# through the same broker (bench/pingpong.py), after the latency at a busy rate with and
# without --read-pause. The `pub -q 1` and `sub` rows are also run with `--read-pause 0`
# (each packet read as it arrives), and `pub -q 1` under MQTT 5. After the `conn` row, the same connections from
# plain sockets with no client of ours (bench/rawconn.py): the kernel's share of them.
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mqttcli}
N=${N:-50000}
CONNS=${CONNS:-10000}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
persistence false
CONF
ulimit -n "$(ulimit -Hn)"
mosquitto -c "$dir/mosquitto.conf" > "$dir/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
# User and system CPU seconds of a process so far.
cpu() { awk -v t="$tick" '{print $14 / t, $15 / t}' "/proc/$1/stat"; }

# Prints one row: label, broker CPU before and after, then the run's GNU time and JSON files.
report() {
  read -r user sys rss < "$dir/time"
  python3 - "$1" "$2" "$3" "$user" "$sys" "$rss" "$dir/out.json" <<'PY'
import json, sys
label, b0, b1, user, sys_, rss, path = sys.argv[1:]
s = json.load(open(path))
(bu0, bs0), (bu1, bs1) = [map(float, b.split()) for b in (b0, b1)]
bu, bs = bu1 - bu0, bs1 - bs0
broker = bu + bs
gu, gs = float(user), float(sys_)
gen = gu + gs
count = s["acked"] or s["received"] or s["connected"]
lat = s["latency_ms"].get("publish") or s["latency_ms"].get("end_to_end") or s["latency_ms"]["connect"]
rate = s["rates"]["acked_per_s"] or s["rates"]["received_per_s"] or s["rates"]["connects_per_s"]
print(f"| {label} | {count} | {rate:.0f}/s | {gen:.2f} s ({gu:.2f} / {gs:.2f}) | {broker:.2f} s ({bu:.2f} / {bs:.2f}) | {gen / broker if broker else 0:.2f} | {int(rss) / 1024:.1f} MiB | {lat['p50']:.3f} / {lat['p99']:.3f} / {lat['max']:.3f} |")
PY
}

# The broker's CPU once it has done what a run left it: QoS 0 messages a generator wrote into
# its socket can still be on their way through the broker when the generator exits (200 000 of
# them fit in 4 clients' socket buffers). Idle: no clock tick for 300 ms (at most a minute).
settled_cpu() {
  local last now
  last=$(cpu $broker)
  for _ in $(seq 200); do
    sleep 0.3
    now=$(cpu $broker)
    [ "$now" = "$last" ] && break
    last=$now
  done
  echo "$last"
}

# One row: the label, then the bench command's arguments after `bench`.
row() {
  local label=$1; shift
  local before
  before=$(cpu $broker)
  /usr/bin/time -f '%U %S %M' -o "$dir/time" "$BIN" "$@" -p "$port" --json --quiet > "$dir/out.json" || true
  report "$label" "$before" "$(settled_cpu)"
}

# The same publish load from paho-mqtt (bench/paho_bench.py, same flags).
paho=$(cd "$(dirname "$0")/.." && pwd)/.bench/paho
if [ ! -d "$paho/paho" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$paho" "paho-mqtt==2.1.0" >&2 || echo "bench: cannot install paho-mqtt 2.1.0: its rows are skipped" >&2
fi
paho_row() {
  local label=$1; shift
  [ -d "$paho/paho" ] || { echo "| $label | skipped: paho-mqtt not installed |"; return; }
  local before
  before=$(cpu $broker)
  PYTHONPATH=$paho /usr/bin/time -f '%U %S %M' -o "$dir/time" \
    python3 "$(dirname "$0")/paho_bench.py" "$@" -p "$port" > "$dir/out.json" || true
  report "$label" "$before" "$(settled_cpu)"
}

# A subscriber's row: it subscribes, then 2 publishers send N each at QoS $1; the other
# arguments are the subscriber's.
sub_row() {
  local q=$1 before
  shift
  before=$(cpu $broker)
  /usr/bin/time -f '%U %S %M' -o "$dir/time" "$BIN" bench sub -c 1 -q "$q" -t 'sub/#' -n $((2 * N)) \
    --duration 300s -p "$port" --json --quiet "$@" > "$dir/out.json" 2> "$dir/sub.err" &
  local sub=$!
  until grep -qs "clients subscribed" "$dir/sub.err"; do sleep 0.05; done
  "$BIN" bench pub -c 2 -q "$q" -n "$N" -t 'sub/%i' -p "$port" --quiet --json > "$dir/pub.json" || true
  wait $sub || true
  python3 - "$dir/pub.json" <<'PY' >&2
import json, sys
s = json.load(open(sys.argv[1]))
print("(its publishers: %d of %d acknowledged)" % (s["acked"], s["sent"]))
PY
  report "sub -c 1 -q $q${1:+ $*}, $((2 * N)) from 2 publishers" "$before" "$(cpu $broker)"
}

echo "| run | count | rate | generator CPU (user / system) | broker CPU (user / system) | ratio | generator peak RSS | latency p50 / p99 / max (ms) |"
echo "|---|---|---|---|---|---|---|---|"
row "pub -c 4 -q 0 -n $N" bench pub -c 4 -q 0 -n "$N" -t 'load/%i'
row "pub -c 4 -q 1 -n $N" bench pub -c 4 -q 1 -n "$N" -t 'load/%i'
# The same without --read-pause: each packet read as it arrives.
row "pub -c 4 -q 1 -n $N --read-pause 0" bench pub -c 4 -q 1 -n "$N" -t 'load/%i' --read-pause 0
row "pub -c 4 -q 1 -n $N -V 5" bench pub -c 4 -q 1 -n "$N" -t 'load/%i' -V 5
paho_row "paho-mqtt: pub -c 4 -q 0 -n $N" -c 4 -q 0 -n "$N" -t 'load/%i'
paho_row "paho-mqtt: pub -c 4 -q 1 -n $N" -c 4 -q 1 -n "$N" -t 'load/%i'
row "pub -c 4 -q 1 --rate 1000 -n 5000 (paced)" bench pub -c 4 -q 1 --rate 1000 -n 5000 -t 'load/%i'
sub_row 0
sub_row 0 --read-pause 0
sub_row 1
sub_row 1 --read-pause 0
# Low-rate latency: mqttcli bench's end-to-end p50 against the ping-pong floor.
# End-to-end latency and the subscriber's CPU at a busy rate, with --read-pause at its default
# and at 0: what the pause adds to the latencies it saves CPU on.
busy_rate() {
  local rate=20000 count=100000
  printf '\nBusy rate (1 publisher at %s/s, 1 subscriber, QoS 0, %s messages):' "$rate" "$count"
  for pause in 200us 0; do
    /usr/bin/time -f '%U %S %M' -o "$dir/time" "$BIN" bench sub -c 1 -q 0 -t 'busy/%i' -n "$count" \
      --duration 120s -p "$port" --json --quiet --read-pause "$pause" > "$dir/busy.json" 2> "$dir/busy.err" &
    local sub=$!
    until grep -qs "clients subscribed" "$dir/busy.err"; do sleep 0.05; done
    "$BIN" bench pub -c 1 -q 0 -t 'busy/%i' --rate "$rate" -n "$count" -p "$port" --quiet --json > /dev/null || true
    wait $sub || true
    read -r user sys _ < "$dir/time"
    python3 - "$dir/busy.json" "$pause" "$user" "$sys" <<'PY'
import json, sys
path, pause, user, sys_ = sys.argv[1:]
e = json.load(open(path))["latency_ms"]["end_to_end"]
print(f" --read-pause {pause}: end-to-end p50 {e['p50']:.3f} ms, p99 {e['p99']:.3f} ms, "
      f"subscriber CPU {float(user) + float(sys_):.2f} s;", end="")
PY
  done
  echo
}

low_rate() {
  "$BIN" bench sub -c 1 -q 0 -t 'lat/%i' -n 1000 --duration 120s -p "$port" --json --quiet \
    > "$dir/lat-sub.json" 2> "$dir/lat-sub.err" &
  local sub=$!
  until grep -qs "clients subscribed" "$dir/lat-sub.err"; do sleep 0.05; done
  "$BIN" bench pub -c 1 -q 0 -t 'lat/%i' --rate 100 -n 1000 -p "$port" --quiet --json > /dev/null || true
  wait $sub || true
  python3 "$(dirname "$0")/pingpong.py" -p "$port" -n 1000 --gap-ms 10 > "$dir/pingpong.json"
  python3 - "$dir/lat-sub.json" "$dir/pingpong.json" <<'PY'
import json, sys
e2e = json.load(open(sys.argv[1]))["latency_ms"]["end_to_end"]
pp = json.load(open(sys.argv[2]))["one_way_ms"]
print(f"\nLow rate (1 publisher at 100/s, 1 subscriber, QoS 0, 1000 messages): `mqttcli bench` "
      f"end-to-end p50 {e2e['p50']:.3f} ms, p99 {e2e['p99']:.3f} ms; raw-socket ping-pong one-way "
      f"p50 {pp['p50']:.3f} ms, p99 {pp['p99']:.3f} ms; p50 overhead {e2e['p50'] - pp['p50']:.3f} ms "
      f"(target ≤ 0.2 ms)")
PY
}

row "conn -c $CONNS --connect-rate 2000, held 5 s" bench conn -c "$CONNS" --connect-rate 2000 --duration $((CONNS / 2000 + 5))s
# The same connections from plain blocking sockets: on loopback the kernel's share of both
# ends of each handshake and teardown is charged to the process that sends (bench/rawconn.py).
before=$(cpu $broker)
/usr/bin/time -f '%U %S %M' -o "$dir/time" python3 "$(dirname "$0")/rawconn.py" \
  -c "$CONNS" --rate 2000 --hold 5 -p "$port" > "$dir/out.json" || true
report "plain sockets (bench/rawconn.py): $CONNS at 2000/s, held 5 s" "$before" "$(cpu $broker)"
busy_rate
low_rate
