#!/usr/bin/env bash
# Lists deny.toml's exceptions (ignored advisories, skipped duplicate versions) whose
# "Review by YYYY-MM-DD" date has passed. .ci/run only warns (an offline run must not turn red
# because of the calendar); the GitHub audit workflow passes --strict and fails.
#
#   packaging/deny-review.sh [--strict]
set -euo pipefail
cd "$(dirname "$0")/.."

today="$(date -u +%Y-%m-%d)"
dates="$(grep -o -i 'review by [0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}' deny.toml | awk '{ print $3 }' | sort -u)"
[ -n "$dates" ] || { echo "deny.toml: no review dates found" >&2; exit 1; }
overdue=0
for d in $dates; do
  if [[ "$d" < "$today" ]]; then
    overdue=1
    echo "deny.toml: review date $d has passed:" >&2
    grep -n -i "review by $d" deny.toml | sed 's/^/  /' >&2
  fi
done
if [ "$overdue" -eq 1 ]; then
  echo "re-check these exceptions (README, Dependencies) and move their dates on" >&2
  [ "${1:-}" = "--strict" ] && exit 1
  exit 0
fi
echo "deny.toml: every exception's review date is ahead (earliest $(head -n 1 <<<"$dates"))"
