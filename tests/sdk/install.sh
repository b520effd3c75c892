#!/usr/bin/env bash
# Installs the SDK test clients, idempotently:
#   js/node_modules  npm ci from js/package-lock.json
#   py/.venv         python3 venv with py/requirements.txt
# Each is skipped when its stamp (the hash of the lock/requirements file it was built from) matches.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

js=$here/js
want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
stamp=$js/node_modules/.lock.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

py=$here/py
want=$(sha256sum "$py/requirements.txt" | cut -d' ' -f1)
stamp=$py/.venv/.requirements.sha256
if [ ! -x "$py/.venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if [ ! -x "$py/.venv/bin/python" ]; then
    python3 -m venv "$py/.venv"
  fi
  "$py/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$py/requirements.txt"
  echo "$want" >"$stamp"
fi
