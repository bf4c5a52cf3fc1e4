"""The local Dagster instance that the tests and the fault campaign run the real daemon on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


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
