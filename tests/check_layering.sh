#!/usr/bin/env bash
# Layering: services (process/, pty/, fs/) talk to the transport only through its small public
# headers, never through HTTP sessions, the listener, the RPC server or its codecs. This keeps
# services testable without a socket and keeps Beast/nghttp2 compile costs in a few files.
#
# Allowed includes from envd/http/ and envd/rpc/ (keep this list short; say why for each):
#   envd/http/exchange.h   the request/response interface REST handlers (/files) are written against
#   envd/rpc/service.h     CallContext, typed readers/writers, Registry: what an RPC service is
#   envd/rpc/status.h      Connect/gRPC status codes and errors
#   envd/rpc/keepalive.h   the keepalive timer streaming methods use
#   envd/rpc/stream_loop.h the one loop every server stream runs (send, keepalives, wake-ups)
# Everything else in envd/ (leaves such as blocking.h, os_error.h, secure.h, paths.h) is fine.
set -euo pipefail
cd "$(dirname "$0")/.."
allowed='^envd/(http/exchange\.h|rpc/service\.h|rpc/status\.h|rpc/keepalive\.h|rpc/stream_loop\.h)$'
status=0
while IFS= read -r -d '' f; do
  while IFS= read -r line; do
    inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]+)[">].*/\1/' <<<"$line")
    if [[ $inc =~ ^envd/(http|rpc)/ ]] && ! [[ $inc =~ $allowed ]]; then
      echo "$f: includes $inc (services may only use: exchange.h, service.h, status.h, keepalive.h, stream_loop.h)" >&2
      status=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$f" || true)
done < <(find process pty fs -type f \( -name '*.cpp' -o -name '*.h' \) -print0 2>/dev/null)
if [[ $status -eq 0 ]]; then echo "layering: services include only the transport's public headers"; fi
exit $status
