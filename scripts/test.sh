#!/usr/bin/env bash
# Install what the tests need and run the whole suite:
#   - Debian's chromium and a CJK font (the web app is tested in a real browser), via apt when missing
#   - a virtual environment .venv with dctoon and its test, web, train and ray extras
# Extra arguments go to pytest, e.g. scripts/test.sh -k video -x
# The tests never touch the user's ~/.cache/dctoon: each run gets its own DCTOON_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '[test.sh] %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wenquanyi; then
  step "installing chromium and a CJK font (apt, about a minute)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
else
  step "chromium and fonts: present"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment .venv"
  "$PY" -m venv .venv
fi
step "installing dctoon with its test, web, train and ray extras into .venv (pip, a few minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,web,train,ray]'

DCTOON_HOME="$(mktemp -d "${TMPDIR:-/tmp}/dctoon-test-home.XXXXXX")"
export DCTOON_HOME
trap 'rm -rf "$DCTOON_HOME"' EXIT
step "running the tests (DCTOON_HOME=$DCTOON_HOME)"
.venv/bin/python -m pytest "$@"
