#!/usr/bin/env bash
# Builds the Debian package, installs it with dpkg, exercises the installed mqttcli (version,
# man pages, completions, a pub/sub round trip and `check` against a Mosquitto of its own on a
# free port of 127.0.0.1), and removes the package again. Run by .ci/run, as root.
#
#   packaging/deb-check.sh
#
# Needs cargo-deb, jq, mosquitto, man (man-db) and dpkg (root, or sudo); uses
# $CARGO_TARGET_DIR if set.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
version="$(cargo metadata --format-version 1 --no-deps --locked \
  | jq -r '.packages[] | select(.name == "mqttcli") | .version')"

# dpkg -i and -r need root: sudo where .ci/run is not root (a GitHub runner).
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

step() { printf '\n== deb: %s\n' "$*"; }
fail() { echo "deb: FAILED: $*" >&2; exit 1; }

step "build the release binary, its man pages and completions, and the package"
cargo build --locked --release
packaging/assets.sh "$target_dir/release/mqttcli" "$target_dir/release/assets"
# cargo deb prints the package's path on stdout (its progress goes to stderr).
deb="$(cargo deb --no-build --locked --output "$target_dir/debian/" | tail -n 1)"
[ -f "$deb" ] || fail "cargo deb did not print the package's path (got: $deb)"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"

broker_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  if dpkg-query -W -f='${Status}' mqttcli 2>/dev/null | grep -q 'install ok installed'; then
    $SUDO dpkg -r mqttcli >/dev/null || true
  fi
  rm -rf "$work"
}
work="$(mktemp -d)"
trap cleanup EXIT

if dpkg-query -W -f='${Status}' mqttcli 2>/dev/null | grep -q 'install ok installed'; then
  echo "deb: an mqttcli package is installed already (an earlier run that was cut short?); removing it"
  $SUDO dpkg -r mqttcli
fi

step "install"
$SUDO dpkg -i "$deb"
bin=/usr/bin/mqttcli
[ -x "$bin" ] || fail "$bin is missing after dpkg -i"
[ -x /usr/bin/mqttcli-bench ] || fail "/usr/bin/mqttcli-bench (which mqttcli bench runs) is missing after dpkg -i"

step "the installed binary, man pages and completions"
"$bin" --version
"$bin" --version | grep -q "^mqttcli $version " || fail "mqttcli --version does not say $version"
for page in mqttcli mqttcli-pub mqttcli-sub mqttcli-unsub mqttcli-check mqttcli-rr mqttcli-bench mqttcli-completions; do
  path="$(man -w "$page")" || fail "man -w $page found no page"
  echo "$page: $path"
  # The page renders (groff via man), and is mqttcli's.
  MANWIDTH=80 man "$page" 2>/dev/null | grep -q -i mqttcli || fail "man $page does not render"
done
for f in /usr/share/bash-completion/completions/mqttcli \
         /usr/share/zsh/vendor-completions/_mqttcli \
         /usr/share/fish/vendor_completions.d/mqttcli.fish; do
  [ -s "$f" ] || fail "completion file $f is missing or empty"
  grep -q mqttcli "$f" || fail "$f does not complete mqttcli"
  echo "completion: $f"
done
bash -n /usr/share/bash-completion/completions/mqttcli
# bash-completion's loader finds the script by the command's name, as an interactive shell would.
if [ -f /usr/share/bash-completion/bash_completion ]; then
  bash -c '. /usr/share/bash-completion/bash_completion; __load_completion mqttcli; complete -p mqttcli' \
    || fail "bash-completion does not load mqttcli's completion"
fi

step "a pub/sub round trip and a check against a local Mosquitto"
mosquitto="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
port=""
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  # Free if nothing accepts a connection on it.
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port="$candidate"
    break
  fi
done
[ -n "$port" ] || fail "no free port found"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$work/mosquitto.log" >&2; fail "mosquitto did not start"; }
  sleep 0.1
done

topic="mqttcli/deb-check/$$"
"$bin" sub -h 127.0.0.1 -p "$port" -t "$topic" -q 1 -C 2 -W 20s -v -d \
  > "$work/sub.out" 2> "$work/sub.err" &
sub_pid=$!
for _ in $(seq 1 100); do
  grep -qs 'SUBACK received' "$work/sub.err" && break
  kill -0 "$sub_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'SUBACK received' "$work/sub.err" || { cat "$work/sub.err" >&2; fail "sub did not subscribe"; }
"$bin" pub -h 127.0.0.1 -p "$port" -t "$topic" -q 1 -m 'hello from the .deb {n}' --repeat 2
sub_code=0
wait "$sub_pid" || sub_code=$?
[ "$sub_code" -eq 0 ] || { cat "$work/sub.err" >&2; fail "sub exited $sub_code"; }
expected="$(printf '%s hello from the .deb 0\n%s hello from the .deb 1' "$topic" "$topic")"
[ "$(cat "$work/sub.out")" = "$expected" ] || { cat "$work/sub.out" >&2; fail "sub printed something else"; }
cat "$work/sub.out"
"$bin" check -h 127.0.0.1 -p "$port" -C 3 -W 10s
# mqttcli bench runs the installed mqttcli-bench.
"$bin" bench conn -h 127.0.0.1 -p "$port" -c 2 --duration 1s --json > "$work/bench.json"
grep -q '"connected": *2' "$work/bench.json" || { cat "$work/bench.json" >&2; fail "bench conn did not connect 2 clients"; }

step "remove"
$SUDO dpkg -r mqttcli
[ ! -e "$bin" ] || fail "$bin is still there after dpkg -r"
[ ! -e /usr/bin/mqttcli-bench ] || fail "/usr/bin/mqttcli-bench is still there after dpkg -r"
man -w mqttcli >/dev/null 2>&1 && fail "man -w mqttcli still finds a page after dpkg -r"
[ ! -e /usr/share/bash-completion/completions/mqttcli ] || fail "the bash completion is still there"
echo "deb: $(basename "$deb") built, installed, exercised and removed"
