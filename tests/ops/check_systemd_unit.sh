#!/usr/bin/env bash
# Checks systemd/envd.service as shipped: `systemd-analyze verify` (Debian's `systemd` package has
# it; PID 1 need not be systemd) on a scratch root holding the unit at /etc/systemd/system and the
# built binary at /usr/bin/envd, so it checks the real ExecStart= without touching this machine's
# /usr/bin. Any output line fails the test (verify exits 0 on warnings such as an unknown key or a
# setting in the wrong section). Then the settings the issue and the contract (§7.3) ask for.
# Usage: check_systemd_unit.sh <envd binary>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
unit="$here/../../systemd/envd.service"
bin=${1:?usage: check_systemd_unit.sh <envd binary>}

command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (scripts/setup.sh installs Debian's systemd)"; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/etc/systemd/system"
cp "$bin" "$root/usr/bin/envd"
chmod 0755 "$root/usr/bin/envd"
cp "$unit" "$root/etc/systemd/system/envd.service"

fail=0
set +e
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --root="$root" envd.service 2>&1)
rc=$?
set -e
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  echo "systemd-analyze verify: exit $rc, output:"
  printf '%s\n' "$out"
  fail=1
fi

# "<section> <key>=<value>" for every setting, comments and blank lines dropped.
settings=$(awk '/^[[:space:]]*[#;]/ || /^[[:space:]]*$/ {next} /^\[/ {s=$0; next} {print s " " $0}' "$unit")
want() {
  if ! grep -qxF -- "$1" <<<"$settings"; then
    echo "missing: $1"
    fail=1
  fi
}
want "[Unit] DefaultDependencies=no"
want "[Unit] After=systemd-journald.socket systemd-remount-fs.service local-fs.target systemd-tmpfiles-setup.service"
want "[Unit] StartLimitIntervalSec=0"
want "[Service] Type=notify"
want "[Service] User=root"
want "[Service] ExecStart=/usr/bin/envd"
want "[Service] Restart=always"
want "[Service] Nice=-20"
want "[Service] IOSchedulingClass=realtime"
want "[Service] IOSchedulingPriority=4"
want "[Service] OOMScoreAdjust=-1000"
want "[Service] OOMPolicy=continue"
want "[Service] Delegate=yes"
want "[Service] MemoryMin=50M"
want "[Service] MemoryLow=100M"
want "[Service] CPUWeight=1000"
want "[Service] IOWeight=10000"
want "[Install] WantedBy=multi-user.target"
if ! grep -q '^\[Service\] LimitNOFILE=[0-9]' <<<"$settings"; then
  echo "missing: [Service] LimitNOFILE=<n>"
  fail=1
fi
# No helper that only E2B's images have (e2b-seed-certs and the like).
if grep -qi 'e2b' <<<"$settings"; then
  echo "references an E2B-only helper:"
  grep -i 'e2b' <<<"$settings"
  fail=1
fi
[ "$fail" -eq 0 ] && echo "systemd/envd.service: verify clean, settings present"
exit "$fail"
