#!/usr/bin/env bash
# Creates .venv (if needed) and installs notif_export with pinned versions. Sourced by the others.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
  "$PYTHON" -m venv .venv
fi
# Reinstall only when the pins or the package's requirements changed.
stamp=.venv/.notif_export-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
# Debian's Chromium for the report's headless browser test (Playwright cannot download its own
# browsers here); without it that test is skipped, saying why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing chromium for the report test (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "could not install chromium: the report's browser test will be skipped"
fi
# The dbt manifest the Dagster code location loads its dbt assets from (nothing runs dbt when
# Dagster loads the code). Partial parsing makes a repeat quick.
.venv/bin/notif-export dbt parse --quiet
