#!/usr/bin/env bash
# The release binary must run where nothing else exists: an empty environment inside a chroot
# that holds only the binary. It must answer GET /health with 204.
set -euo pipefail
bin=$1
if [ "$(id -u)" != 0 ]; then
  echo "static_chroot: needs root for chroot" >&2
  exit 1
fi
if file "$bin" | grep -q 'dynamically linked'; then
  echo "static_chroot: $bin is dynamically linked" >&2
  exit 1
fi
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cp "$bin" "$dir/envd"
env -i "$(command -v chroot)" "$dir" /envd -port 0 -isnotfc 2>"$dir.log" &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep -oE 'listening on [0-9.]+:[0-9]+' "$dir.log" 2>/dev/null | sed -E 's/.*:([0-9]+)$/\1/' || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "static_chroot: envd did not start"; cat "$dir.log"; rm -f "$dir.log"; exit 1; }
rm -f "$dir.log"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
echo "GET /health -> $code"
[ "$code" = 204 ]
