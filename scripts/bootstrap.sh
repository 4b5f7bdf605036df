#!/usr/bin/env bash
# Makes this checkout runnable on a fresh Debian machine: system tools, then the virtualenv.
# Idempotent and quiet when everything is already there; called by every make target.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# `docker-compose config` validates docker-compose.yml in the tests (no Docker engine needed).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# The browser tests drive Debian's Chromium (never a downloaded browser build).
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "bootstrap: missing $pkgs; run as root or install them: apt-get install $pkgs" >&2; exit 1
      fi
    fi
    echo "bootstrap: installing $pkgs with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  else
    echo "bootstrap: missing $pkgs and no apt-get here; install them with your package manager" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "bootstrap: Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2; exit 1; }

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { echo "bootstrap: '$PY -m venv' failed: apt-get install python3-venv" >&2; exit 1; }
fi
if [ ! -f "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements-dev.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
