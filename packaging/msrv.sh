#!/usr/bin/env bash
# Checks that Cargo.toml's rust-version is honest: at least the rust-version that every crate
# in Cargo.lock declares (all platforms, dev-dependencies included, since `cargo test` builds
# those too). Fails, naming the crates, when the lock needs a newer Rust than Cargo.toml says.
#
# Only one toolchain is at hand where .ci/run runs, so this reads the declarations; the GitHub
# workflow's `msrv` job builds and tests with that exact toolchain.
#
#   packaging/msrv.sh          # check
#   packaging/msrv.sh --print  # print the rust-version Cargo.toml declares (for the workflow)
set -euo pipefail
cd "$(dirname "$0")/.."

meta="$(cargo metadata --format-version 1 --locked)"
declared="$(jq -r '.packages[] | select(.source == null and .name == "mqttcli") | .rust_version' <<<"$meta")"
if [ "${1:-}" = "--print" ]; then
  echo "$declared"
  exit 0
fi

# "1.88" and "1.88.0" are the same requirement: compare major.minor.patch padded to three parts.
norm() { awk -F. '{ printf "%d.%d.%d\n", $1, $2, ($3 == "" ? 0 : $3) }'; }
needed="$(jq -r '.packages[] | select(.source != null) | .rust_version // empty' <<<"$meta" \
  | norm | sort -V | tail -n 1)"
declared_n="$(norm <<<"$declared")"

if [ "$(printf '%s\n%s\n' "$needed" "$declared_n" | sort -V | tail -n 1)" != "$declared_n" ]; then
  echo "rust-version: Cargo.toml says $declared, but Cargo.lock needs $needed:" >&2
  jq -r '.packages[] | select(.source != null and .rust_version != null)
         | "\(.rust_version) \(.name) \(.version)"' <<<"$meta" | sort -V -r \
    | awk -v d="$declared_n" '{ split($1, a, "."); split(d, b, ".");
        if (a[1] > b[1] || (a[1] == b[1] && a[2] > b[2]) ||
            (a[1] == b[1] && a[2] == b[2] && a[3] + 0 > b[3] + 0)) print "  " $0 }' >&2
  echo "raise rust-version, or hold those crates back (cargo update --precise)" >&2
  exit 1
fi
echo "rust-version: Cargo.toml says $declared; the newest that Cargo.lock's crates need is $needed"
