#!/usr/bin/env bash
# The second command: install, then run the whole test suite against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Debian's Chromium for the report's headless browser test (Playwright cannot download its own
# browsers here); without it that test is skipped, saying why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "==> installing chromium for the report test (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "==> could not install chromium: the report's browser test will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
