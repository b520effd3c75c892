#!/usr/bin/env bash
# Installs every Debian bookworm package envd's build and tests need. Idempotent: re-running
# installs nothing that is already present. As root it runs apt-get itself (a fresh
# debian:bookworm container has no sudo); as another user it needs sudo, and only when something
# is missing. `--build`: only what building the envd binary needs (the Dockerfile's build stage,
# `scripts/dev run`), without the test clients, systemd and debootstrap.
set -euo pipefail

build_only=0
if [ "${1:-}" = "--build" ]; then build_only=1; fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

build_pkgs=(
  build-essential g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-system1.81-dev
  libnghttp2-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev
)
pkgs=(
  "${build_pkgs[@]}" clang-format doctest-dev
  clang libclang-rt-14-dev
  curl nghttp2-client nodejs npm python3 python3-venv passwd util-linux
  # The SDK tests' sandbox is like an E2B template: `git` and `python` on PATH, `sudo` for `user`
  # (tests/sdk/install.sh creates the user and its sudoers entry).
  git sudo python-is-python3
  # tests/ops: `systemd-analyze verify` of systemd/envd.service (PID 1 need not be systemd) and the
  # debootstrap chroot in which the Dockerfile's runtime stage is checked.
  systemd debootstrap
)

if [ "$build_only" = 1 ]; then pkgs=("${build_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node and Python may come from outside Debian (nvm, pyenv): accept those when present.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs | npm) command -v node >/dev/null && command -v npm >/dev/null && continue ;;
    python3 | python3-venv) command -v python3 >/dev/null && python3 -c 'import venv' 2>/dev/null && continue ;;
    # `python` must be on every user's PATH (envd's login shells), not only on root's (pyenv).
    python-is-python3) [ -x /usr/bin/python ] || [ -x /usr/local/bin/python ] && continue ;;
  esac
  filtered+=("$p")
done

if [ ${#filtered[@]} -gt 0 ]; then
  echo "setup: installing ${filtered[*]}"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "setup: installing packages needs root: run this as root, or install sudo" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # libboost1.74-dev (bookworm's default) conflicts with 1.81; remove it if present.
  if dpkg-query -W -f='${Status}' libboost1.74-dev 2>/dev/null | grep -q "install ok installed"; then
    $SUDO apt-get remove -y -qq libboost1.74-dev
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}"
else
  echo "setup: all system packages present"
fi
