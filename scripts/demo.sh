#!/usr/bin/env bash
# The first command: install, then local S3 + SQLite with a day of history + live traffic + Dagster UI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/notif-export demo "$@"
