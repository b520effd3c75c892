#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: the seed corpus first (every past crash is a seed,
# so it replays as a regression test), then mutations into a scratch corpus. Fails on any crash,
# leak, sanitizer report or timeout; prints libFuzzer's final stats (executions, coverage).
#   run_fuzz.sh <target> <seed-dir> <seconds>
set -euo pipefail
target=$1 seeds=$2 secs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1
set +e
"$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds" >"$work/log" 2>&1
rc=$?
set -e
grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb))' "$work/log" || true
if [ $rc -ne 0 ]; then
  tail -60 "$work/log"
  for f in "$work"/artifacts/*; do
    [ -e "$f" ] || continue
    echo "artifact $(basename "$f") (base64; add it to $seeds to make it a regression seed):"
    base64 -w0 "$f" | head -c 4096
    echo
  done
  exit $rc
fi
