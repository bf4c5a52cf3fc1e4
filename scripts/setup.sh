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
# The dbt manifest the Dagster code location loads its dbt assets from (nothing runs dbt when
# Dagster loads the code). Partial parsing makes a repeat quick.
.venv/bin/notif-export dbt parse --quiet
