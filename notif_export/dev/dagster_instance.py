"""The local Dagster instance that the tests and the fault campaign run the real daemon on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from notif_export.lib.settings import PROJECT_DIR


def create_instance_storage(home: Path | str) -> None:
    """Create the instance's storage before a daemon starts: reading a fresh SQLite storage
    while the daemon creates it can stamp its schema twice (two alembic heads)."""
    dg.DagsterInstance.from_config(str(home)).dispose()


def sync_cursor(home: Path | str) -> str | None:
    """The sync sensor's cursor: None until its first tick."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for state in instance.all_instigator_state():
            if state.name == "sync" and state.instigator_data and state.instigator_data.cursor:
                return state.instigator_data.cursor
    return None


def dagster_command(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess:
    """Dagster's own command line on the project's workspace, in the instance of `env`'s DAGSTER_HOME."""
    command = [str(Path(sys.executable).parent / "dagster"), *args, "-w", str(PROJECT_DIR / "workspace.yaml")]
    return subprocess.run(command, env=dict(env), cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
