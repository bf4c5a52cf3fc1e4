"""Running the dbt project (dbt_project/) against the exported files.

dbt reads every setting from the environment (dbt_project/profiles.yml); this module builds that
environment from notif_export's own settings, so the export and the models always agree on the
bucket, prefix, layout, endpoint and credentials. Secrets are passed as DBT_ENV_SECRET_*
variables, which dbt scrubs from its logs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

from notif_export.lib.duckdb_s3 import install_httpfs
from notif_export.lib.export import Destination
from notif_export.lib.settings import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")  # Dagster run statuses that end a run


def dbt_executable() -> str:
    """The dbt installed beside this Python (the venv need not be on PATH)."""
    return str(Path(sys.executable).with_name("dbt"))


def dbt_env(config: Settings, destination: Destination) -> dict[str, str]:
    """The variables dbt_project/profiles.yml and the sources read, secrets aside."""
    endpoint = urlparse(config.endpoint_url) if config.endpoint_url else None
    return {
        "NOTIF_EXPORT_DBT_TARGET": config.dbt_target,
        "NOTIF_EXPORT_DBT_FILES": destination.files_glob("{name}"),
        "NOTIF_EXPORT_DBT_S3_REGION": config.region,
        "NOTIF_EXPORT_DBT_S3_ENDPOINT": endpoint.netloc if endpoint else f"s3.{config.region}.amazonaws.com",
        # A custom endpoint (a local server, MinIO, SeaweedFS) is addressed by path.
        "NOTIF_EXPORT_DBT_S3_URL_STYLE": "path" if endpoint else "vhost",
        "NOTIF_EXPORT_DBT_S3_USE_SSL": "false" if endpoint and endpoint.scheme == "http" else "true",
        "NOTIF_EXPORT_DUCKDB_PATH": str(config.duckdb_path),
        "NOTIF_EXPORT_DUCKDB_EXTENSIONS": str(config.home / "duckdb_extensions"),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
    }


def credentials_env(credentials) -> dict[str, str]:
    """botocore credentials as the DBT_ENV_SECRET_* variables the DuckDB profile reads; dbt
    scrubs their values from everything it logs. None (no credentials) reads anonymously."""
    if credentials is None:
        return {}
    frozen = credentials.get_frozen_credentials()
    return {
        "DBT_ENV_SECRET_AWS_ACCESS_KEY_ID": frozen.access_key,
        "DBT_ENV_SECRET_AWS_SECRET_ACCESS_KEY": frozen.secret_key,
        "DBT_ENV_SECRET_AWS_SESSION_TOKEN": frozen.token or "",
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


def run_dbt(args: Sequence[str], env: dict[str, str], base_env: Mapping[str, str]) -> int:
    """`dbt <args>` in the project folder with the built environment; returns dbt's exit code."""
    prepare_duckdb(env)
    return subprocess.run([dbt_executable(), *args], cwd=DBT_PROJECT_DIR, env={**base_env, **env}).returncode


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
        ready, any_success = tick, any_success or "SUCCESS" in statuses
    return ready, any_success
