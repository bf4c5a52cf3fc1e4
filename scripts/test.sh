#!/usr/bin/env bash
# The second command: install, then run the whole test suite against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
