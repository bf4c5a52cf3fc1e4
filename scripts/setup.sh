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
  echo "==> installing the pinned packages into .venv (the first time takes about 3 minutes)"
  # One line per package as progress; pip's whole output (with any warnings about this machine's
  # package indexes) goes to a log, shown when the install fails.
  log=.venv/pip-install.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt \
      -e ".[test]" 2>&1 | tee "$log" | { grep --line-buffered '^Collecting ' || true; } \
      | sed -u -e 's/^Collecting /  /' -e 's/ (from .*)$//'; then
    echo "==> the install failed; the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
echo "==> preparing the dbt project"
# The dbt manifest the Dagster code location loads its dbt assets from (nothing runs dbt when
# Dagster loads the code). Partial parsing makes a repeat quick.
.venv/bin/notif-export dbt parse --quiet
