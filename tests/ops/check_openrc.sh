#!/usr/bin/env bash
# Checks openrc/envd: `sh -n` (syntax, as openrc-run's /bin/sh parses it), then reads it the way
# openrc-run does (sourced by a POSIX sh, then depend() called with need/after/use recorded) and
# checks it asks for what systemd/envd.service asks for. OpenRC itself is not installed here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
script="$here/../../openrc/envd"
fail=0

sh -n "$script"
head -1 "$script" | grep -qx '#!/sbin/openrc-run' || { echo "first line is not #!/sbin/openrc-run"; fail=1; }

# Source it in a plain sh with openrc-run's helpers stubbed; print what openrc-run would use.
got=$(sh -c '
  need() { echo "need $*"; }; after() { echo "after $*"; }; use() { echo "use $*"; }
  before() { echo "before $*"; }; keyword() { echo "keyword $*"; }; provide() { echo "provide $*"; }
  checkpath() { :; }
  . "$1"
  echo "supervisor=$supervisor"
  echo "command=$command"
  echo "command_args=$command_args"
  echo "command_user=$command_user"
  echo "output_log=$output_log"
  echo "error_log=$error_log"
  echo "respawn_max=$respawn_max"
  echo "supervise_daemon_args=$supervise_daemon_args"
  echo "rc_ulimit=$rc_ulimit"
  printf "%s\n" "$rc_cgroup_settings" | sed "/^$/d; s/^/cgroup /"
  depend
  type start_pre >/dev/null && start_pre
' sh "$script")

want() {
  if ! grep -qxF -- "$1" <<<"$got"; then
    echo "missing: $1"
    fail=1
  fi
}
want "supervisor=supervise-daemon"
want "command=/usr/bin/envd"
want "command_args="
want "command_user=root"
want "output_log=/var/log/envd.log"
want "error_log=/var/log/envd.log"
want "respawn_max=0"
want "supervise_daemon_args=--nicelevel -20 --ionice 1:4 --oom-score-adj -1000"
want "rc_ulimit=-n 1048576"
want "cgroup memory.min 50M"
want "cgroup memory.low 100M"
want "cgroup cpu.weight 1000"
want "cgroup io.weight 10000"
want "need localmount"
if grep -qi 'e2b' "$script"; then
  echo "references an E2B-only helper"
  fail=1
fi
[ "$fail" -eq 0 ] && echo "openrc/envd: sh -n clean, settings present"
exit "$fail"
