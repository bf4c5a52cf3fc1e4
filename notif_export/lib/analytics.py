"""Running the dbt project (dbt_project/) against the exported files.

dbt reads every setting from the environment (dbt_project/profiles.yml); this module builds that
environment from notif_export's own settings, so the export and the models always agree on the
bucket, prefix, layout, endpoint and credentials. Secrets are passed as DBT_ENV_SECRET_*
variables, which dbt scrubs from its logs.
"""

from __future__ import annotations

import fcntl
import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import duckdb

from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.duckdb_s3 import install_httpfs, s3_endpoint_options
from notif_export.lib.run_status import FINISHED, SUCCEEDED
from notif_export.lib.settings import PROJECT_DIR, DbtSettings, Settings

DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv need not be on PATH)."""
    return str(Path(sys.executable).with_name("dbt"))


def dbt_env(settings: Settings) -> dict[str, str]:
    """Every variable dbt_project/ reads, secrets aside (dbt has no defaults of its own: a
    variable missing here is an error in dbt, not a silent default)."""
    endpoint = s3_endpoint_options(settings.bucket_access)
    return {
        **{DbtSettings.variable(f.name): getattr(settings.dbt, f.name) for f in fields(DbtSettings)
           if f.name not in DbtSettings.SECRETS},
        "NOTIF_EXPORT_DBT_FILES": settings.destination.files_glob("{name}"),
        "NOTIF_EXPORT_DBT_DATA_POINTS": ",".join(settings.data_points),
        "NOTIF_EXPORT_DBT_COLUMNS": json.dumps(source_columns()),
        **{f"NOTIF_EXPORT_DBT_S3_{name.upper()}": value for name, value in endpoint.items()},
        "NOTIF_EXPORT_DUCKDB_PATH": str(settings.duckdb_path),
        "NOTIF_EXPORT_DUCKDB_EXTENSIONS": str(settings.home / "duckdb_extensions"),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
    }


@functools.cache
def source_columns() -> dict[str, dict[str, str]]:
    """Each data point's columns with the DuckDB types its files are read with, from the contract:
    on DuckDB, dbt reads a data point without files as an empty relation of these columns. DuckDB
    itself types them (from the Arrow schema the files are written with), so they match a read of
    the files exactly."""
    with duckdb.connect() as con:
        return {dp.name: dict(zip(dp.columns, map(str, con.from_arrow(dp.schema.empty_table()).types)))
                for dp in DATA_POINTS.values()}


def secrets_env(credentials, bigquery_token: str | None) -> dict[str, str]:
    """The secrets as the DBT_ENV_SECRET_* variables the profile reads; dbt scrubs their values
    from everything it logs. `credentials` are botocore's (None: the bucket is read anonymously)."""
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    return {
        "DBT_ENV_SECRET_AWS_ACCESS_KEY_ID": frozen.access_key if frozen else "",
        "DBT_ENV_SECRET_AWS_SECRET_ACCESS_KEY": frozen.secret_key if frozen else "",
        "DBT_ENV_SECRET_AWS_SESSION_TOKEN": (frozen.token if frozen else "") or "",
        "DBT_ENV_SECRET_BIGQUERY_TOKEN": bigquery_token or "",
    }


def prepare_duckdb(env: dict[str, str]) -> None:
    """Before a DuckDB build: the database's folder, and httpfs installed from the pinned
    package (DuckDB cannot download it here)."""
    if env["NOTIF_EXPORT_DBT_TARGET"] != "duckdb":
        return
    Path(env["NOTIF_EXPORT_DUCKDB_PATH"]).parent.mkdir(parents=True, exist_ok=True)
    folder = Path(env["NOTIF_EXPORT_DUCKDB_EXTENSIONS"])
    if not any(folder.rglob("httpfs.duckdb_extension")):
        folder.mkdir(parents=True, exist_ok=True)
        install_httpfs(folder)


# dbt commands that never open the warehouse, so need not wait for a build.
OFFLINE_DBT_COMMANDS = {"parse", "deps", "clean", "ls", "list", "init", "--help", "-h", "--version"}


@contextmanager
def analytics_lock(database: Path, shared: bool = False, waiting: Callable[[], object] = lambda: None
                   ) -> Iterator[None]:
    """DuckDB lets one process write a database file, and none read it meanwhile: builds
    (`notif-export dbt`, Dagster's) take this lock exclusively and readers (`notif-export query`)
    shared, so they queue instead of failing on DuckDB's own lock. `waiting` is called when the
    lock is held by another process."""
    lock_path = database.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(lock, mode)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_dbt(args: Sequence[str], env: dict[str, str], base_env: Mapping[str, str]) -> int:
    """`dbt <args>` in the project folder with the built environment; returns dbt's exit code."""
    prepare_duckdb(env)
    command = [dbt_executable(), *args]
    if env["NOTIF_EXPORT_DBT_TARGET"] != "duckdb" or (args and args[0] in OFFLINE_DBT_COMMANDS):
        return subprocess.run(command, cwd=DBT_PROJECT_DIR, env={**base_env, **env}).returncode
    with analytics_lock(Path(env["NOTIF_EXPORT_DUCKDB_PATH"]), waiting=lambda: print("waiting for the analytics build that is running to finish ...",
                                           file=sys.stderr, flush=True)):
        return subprocess.run(command, cwd=DBT_PROJECT_DIR, env={**base_env, **env}).returncode


def ready_sync_ticks(runs: Iterable[tuple[str, int, str]], after: str | None) -> tuple[str | None, bool]:
    """Which sync ticks have all their runs finished, for one dbt build after them.

    `runs` are (tick, runs the tick requested, status) for each sync run; ticks sort in time
    order. Returns the latest tick up to which every tick is finished (None when none is), and
    whether any of their runs succeeded (else there is nothing new to build). A tick whose runs
    are still queued, running or not yet created stops the walk, so none is ever skipped.
    """
    ticks: dict[str, tuple[int, list[str]]] = {}
    for tick, expected, status in runs:
        if after is None or tick > after:
            ticks.setdefault(tick, (expected, []))[1].append(status)
    ready, any_success = None, False
    for tick in sorted(ticks):
        expected, statuses = ticks[tick]
        if len(statuses) < expected or any(s not in FINISHED for s in statuses):
            break
        ready, any_success = tick, any_success or SUCCEEDED in statuses
    return ready, any_success
