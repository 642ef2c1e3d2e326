#!/usr/bin/env bash
# CI: what the browser tests (tests/ui/test_dashboard_browser.py) need, installed only where missing:
# Debian's chromium (Playwright drives it through executable_path; `playwright install` is never run, it would
# download its own browser) and the python package playwright in the project's venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi

PY=.venv/bin/python
if [ -x "$PY" ] && ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  .venv/bin/pip install -q playwright
fi

/usr/bin/chromium --version
