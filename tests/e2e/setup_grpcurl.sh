#!/usr/bin/env bash
# Installs grpcurl (a Go module, pinned) for e2e.reflection if it is missing. Idempotent; called by
# `scripts/dev test` before the tests run (a cold `go install` takes minutes on 2 cores) and by the
# test itself as a fallback. Prints the binary's path.
set -euo pipefail
version=v1.9.1
bin_dir=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/envd/grpcurl-$version
if [ ! -x "$bin_dir/grpcurl" ]; then
  echo "reflection: installing grpcurl $version into $bin_dir" >&2
  mkdir -p "$bin_dir"
  (cd "$bin_dir" && GOBIN="$bin_dir" GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version" >&2)
fi
echo "$bin_dir/grpcurl"
