#!/usr/bin/env bash
# mqttcli's benchmark suite: mqttcli against mosquitto_pub / mosquitto_sub, side by side, on a
# private Mosquitto broker on a free port of 127.0.0.1. See BENCHMARKS.md for what is measured,
# the targets and the recorded runs.
#
#   bench/run.sh                       # build, measure, print the table, append it to BENCHMARKS.md
#   REPEATS=5 bench/run.sh             # more throughput runs
#   RECORD=0 bench/run.sh              # print only; leave BENCHMARKS.md alone
#
# Settings (environment):
#   RUNS=300        single-publish runs per tool and QoS (median reported)
#   LINES=200000    messages in the `pub -l` and `sub` throughput runs
#   PAYLOAD=64      bytes per message (at least 9)
#   REPEATS=3       throughput runs per tool and case (median reported)
#   SMALL_LINES=60000  the QoS 1 `pub -l` comparison is also run at this size, below the 65535
#                   messages where mosquitto_pub 2.0's -l mode starts losing QoS 1 messages
#   RSS_RUNS=3      idle-sub RSS samples per tool (median reported)
#   LAT_MSGS=1000   lone messages in the publish-to-print latency runs, one at a time
#   LAT_GAP_MS=5    pause between two of them
#   SCALE_MSGS=1000000,10000000  the `sub` message counts whose peak RSS is compared
#   BIG_MB=256      the large payload (MiB; the broker's limit is just under 256)
#   TOPICS=10000    distinct topics through one `sub`
#   WINDOWS=1,10,100,1000  in-flight windows (-M) of the `pub -l` QoS 1/2 scaling table
#   WINDOW_LINES=20000     lines per run of that table
#   ALIAS_LINES=10000  messages per run of the topic-alias part (bytes on the wire per PUBLISH)
#   ALIAS_TOPIC=factory/line-3/press-12/sensors/temperature  the topic of those runs
#   WAIT=60         upper bound in seconds for any single wait
#   BUILD=1         run `cargo build --release` first (0: use target/release/mqttcli as it is)
#   RECORD=1        append the run to BENCHMARKS.md (0: don't)
#   PARTS=single,pub,sub,latency,rss,scale,aliases  which parts to run (the binary size is always
#                   reported); `scale` (10 million messages, a 256 MB payload) takes minutes
#   NOTE=...        free text added to the recorded run
#
# Needs: cargo, python3 (3.9+, standard library only), mosquitto, mosquitto_pub, mosquitto_sub,
# GNU time (peak RSS of the `scale` part)
# (Debian: apt-get install mosquitto mosquitto-clients). Exits non-zero if mqttcli lost a QoS 1
# message, exited non-zero, or a step failed or timed out; a missed target is reported, not fatal.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

# The command as typed, with the settings that were given explicitly.
command_line="bench/run.sh"
for v in ALIAS_TOPIC ALIAS_LINES NOTE RECORD BUILD WAIT PARTS WINDOW_LINES WINDOWS TOPICS BIG_MB SCALE_MSGS LAT_GAP_MS LAT_MSGS RSS_RUNS SMALL_LINES REPEATS PAYLOAD LINES RUNS; do
  if [ -n "${!v+x}" ]; then
    command_line="$v=${!v@Q} $command_line"
  fi
done

export RUNS="${RUNS:-300}" LINES="${LINES:-200000}" PAYLOAD="${PAYLOAD:-64}" REPEATS="${REPEATS:-3}"
export SMALL_LINES="${SMALL_LINES:-60000}" RSS_RUNS="${RSS_RUNS:-3}" WAIT="${WAIT:-60}"
BUILD="${BUILD:-1}"
RECORD="${RECORD:-1}"

for tool in mosquitto mosquitto_pub mosquitto_sub python3 /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench: $tool not found (apt-get install mosquitto mosquitto-clients python3 time)" >&2
    exit 2
  }
done

# Load before anything of ours runs: on a shared machine other builds and tests skew every figure.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ncpu=$(nproc)
loaded=$(awk -v l="${load_before%% *}" -v n="$ncpu" 'BEGIN { if (l > 0.5 * n) print "machine loaded: 1-min load " l " on " n " CPUs; figures may be skewed" }')
echo "bench: load average before the run: $load_before ($ncpu CPUs)" >&2
[ -z "$loaded" ] || echo "bench: WARNING: $loaded" >&2

if [ "$BUILD" != 0 ]; then
  echo "bench: cargo build --release" >&2
  cargo build --release --quiet || { echo "bench: cargo build --release failed" >&2; exit 2; }
fi
[ -x target/release/mqttcli ] || { echo "bench: target/release/mqttcli missing (run with BUILD=1)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqttcli-bench.XXXXXX")
broker_pid=""
bench_pid=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A private copy, so a concurrent `cargo build` by someone else cannot swap the binary mid-run.
cp target/release/mqttcli "$tmp/mqttcli"
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
  git_rev="$git_rev + uncommitted changes in src/ or Cargo.*"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
# unlimited queue: the default (1000) silently drops QoS 1 messages to a subscriber that lags
max_queued_messages 0
# unlimited QoS 1/2 messages in flight to each subscriber (the default, 20, paces delivery by
# round trips, which would measure the window rather than the clients)
max_inflight_messages 0
persistence false
log_dest stderr
log_type error
log_type warning
# "CLIENT QOS FILTER" per SUBSCRIBE: how the harness knows a subscriber without a retained
# marker (the common case) is subscribed, without changing what it receives.
log_type subscribe
EOF
# stderr, not `log_dest file`: run as root, mosquitto drops to its own user and could not open a
# file in this private directory.
mosquitto -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.log" &
broker_pid=$!

# Ready when a QoS 1 publish is acknowledged (bounded: 10 s).
ready=0
for _ in $(seq 100); do
  if ! kill -0 "$broker_pid" 2>/dev/null; then break; fi
  if timeout 5 mosquitto_pub -h 127.0.0.1 -p "$port" -t bench/probe -q 1 -m x 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" != 1 ]; then
  echo "bench: mosquitto did not start on 127.0.0.1:$port" >&2
  cat "$tmp/mosquitto.log" >&2 2>/dev/null || true
  exit 2
fi
echo "bench: mosquitto pid $broker_pid on 127.0.0.1:$port" >&2

record_file=""
[ "$RECORD" = 0 ] || record_file="$ROOT/BENCHMARKS.md"

set +e
BENCH_MQTTCLI="$tmp/mqttcli" BENCH_PORT="$port" BENCH_BROKER_PID="$broker_pid" BENCH_TMP="$tmp" \
  BENCH_BROKER_LOG="$tmp/mosquitto.log" \
  BENCH_RECORD_FILE="$record_file" BENCH_COMMAND="$command_line" BENCH_GIT="$git_rev" \
  BENCH_LOAD_BEFORE="$load_before" BENCH_LOADED="$loaded" BENCH_NOTE="${NOTE:-}" \
  BENCH_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" \
  python3 "$ROOT/bench/bench.py" &
bench_pid=$!
wait "$bench_pid"
rc=$?
set -e
bench_pid=""

if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "bench: the broker died during the run" >&2
  rc=2
fi
if [ -s "$tmp/mosquitto.log" ]; then
  if grep -qv -E '^[0-9]+: [^ ]+ [0-2] ' "$tmp/mosquitto.log"; then
    echo "bench: broker log (errors and warnings):" >&2
    grep -v -E '^[0-9]+: [^ ]+ [0-2] ' "$tmp/mosquitto.log" | tail -n 20 >&2
  fi
fi
exit "$rc"
