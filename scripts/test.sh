#!/usr/bin/env bash
# Install what the tests need and run the whole suite:
#   - Debian's chromium and a CJK font (the web app is tested in a real browser), via apt when missing
#   - a virtual environment .venv with dctoon and its test, web and train extras
# Extra arguments go to pytest, e.g. scripts/test.sh -k video -x
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wenquanyi; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,web,train]'

exec .venv/bin/python -m pytest "$@"
