#!/usr/bin/env bash
# Installs the SDK test clients and the test machine's E2B-template environment, idempotently:
#   js/node_modules  npm ci from js/package-lock.json
#   py/.venv         python3 venv with py/requirements.txt
#   as root: user `user` (useradd -m -s /bin/bash), passwordless sudo for it
#            (/etc/sudoers.d/user, 0440, checked with visudo -cf), and a check that `git`, `sudo`
#            and `python` are on every user's PATH (scripts/setup.sh installs them).
# Each client is skipped when its stamp (the hash of the lock/requirements file it was built
# from) matches; the user and the sudoers file are left alone when already right.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# --- the template environment (what E2B templates have: user `user`, sudo, git, python) -------
template_env() {
  local sys_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin missing=() t
  for t in git sudo visudo python; do
    PATH=$sys_path command -v "$t" >/dev/null || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: missing on the system PATH: ${missing[*]} (run: bash scripts/setup.sh)" >&2
    return 1
  fi
  if ! id -u user >/dev/null 2>&1; then
    # 9: created meanwhile by a concurrent test run.
    useradd -m -s /bin/bash user || [ $? = 9 ]
  fi
  local want='user ALL=(ALL:ALL) NOPASSWD: ALL' file=/etc/sudoers.d/user tmp
  if [ "$(cat "$file" 2>/dev/null)" != "$want" ] || [ "$(stat -c %a:%u "$file")" != 440:0 ]; then
    mkdir -p /etc/sudoers.d
    chmod 0755 /etc/sudoers.d
    tmp=$(mktemp /etc/sudoers.d/.user.XXXXXX) # dot files are ignored by sudo's includedir
    printf '%s\n' "$want" >"$tmp"
    chmod 0440 "$tmp"
    if ! visudo -cf "$tmp" >/dev/null; then
      rm -f "$tmp"
      echo "install.sh: visudo rejected the sudoers entry for user" >&2
      return 1
    fi
    mv -f "$tmp" "$file"
  fi
  # bookworm's /etc/sudoers reads /etc/sudoers.d; check that the result works.
  su -s /bin/sh user -c 'sudo -n true' || {
    echo "install.sh: user cannot sudo without a password (is @includedir /etc/sudoers.d in /etc/sudoers?)" >&2
    return 1
  }
}
if [ "$(id -u)" = 0 ]; then
  template_env
else
  echo "install.sh: not root: skipping the template user and sudoers (the SDK tests run as root)" >&2
fi

# --- the SDK clients --------------------------------------------------------------------------
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
