#!/usr/bin/env bash
# Installs the Connect conformance runner (connectconformance, a Go module) if it is missing.
# Idempotent. The module's protos land in Go's module cache, where tests/conformance/CMakeLists.txt
# finds them. Prints the runner's path.
set -euo pipefail
version=v1.0.7
bin_dir=${ENVD_CONFORMANCE_BIN_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/envd/connectconformance-$version}
proto=$(go env GOMODCACHE)/connectrpc.com/conformance@$version/proto/connectrpc/conformance/v1/service.proto
if [ ! -x "$bin_dir/connectconformance" ] || [ ! -f "$proto" ]; then
  echo "conformance: installing connectconformance $version into $bin_dir" >&2
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "connectrpc.com/conformance/cmd/connectconformance@$version" >&2
fi
echo "$bin_dir/connectconformance"
