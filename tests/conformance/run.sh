#!/usr/bin/env bash
# Runs the Connect conformance suite (server mode) against conformance_server with the declared
# configuration (config.yaml) and prints `conformance: N passed, N failed`. Cases listed in
# known-failing.txt (each with its reason) must fail; any other failure fails the run.
#   run.sh <conformance_server> [connectconformance flags, e.g. --run PATTERN, -v, --trace]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
server=${1:?usage: run.sh <conformance_server> [runner flags]}
shift
runner=$("$here/setup.sh")
args=(--mode server --conf "$here/config.yaml" --parallel "${ENVD_CONFORMANCE_PARALLEL:-8}")
# Pattern lines only: comments and blank lines are for people.
known=$(mktemp)
trap 'rm -f "$known"' EXIT
grep -vE '^\s*(#|$)' "$here/known-failing.txt" >"$known" || true
if [ -s "$known" ]; then args+=(--known-failing "@$known"); fi
log=$(mktemp)
trap 'rm -f "$known" "$log"' EXIT
set +e
"$runner" "${args[@]}" "$@" -- "$server" >"$log" 2>&1
rc=$?
set -e
cat "$log"
# The runner's summary: "N passed, N failed" (known failures that failed count as passed).
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
if [ -z "$summary" ]; then
  echo "conformance: 0 passed, 1 failed (no summary from connectconformance, exit $rc)"
  exit 1
fi
passed=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")
echo "conformance: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
