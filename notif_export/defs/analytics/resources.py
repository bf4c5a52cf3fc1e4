"""dbt over the exported files, with the export's own bucket settings and credentials."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject

from notif_export.defs.shared.resources import DestinationResource
from notif_export.lib.analytics import DBT_PROJECT_DIR, prepare_duckdb, secrets_env

# Built once. Its manifest is prepared by scripts/setup.sh (`dbt parse`); nothing runs dbt when
# the code location loads.
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class AnalyticsResource(dg.ConfigurableResource):
    """Runs dbt_project/ against the bucket the exports write to.

    `settings_env` holds the non-secret variables the profile reads (target, files, endpoint);
    the credentials are resolved when dbt starts, from the destination's connection, and handed
    to dbt as DBT_ENV_SECRET_* variables, which dbt scrubs from its logs.
    """

    dbt: DbtCliResource
    destination: DestinationResource
    settings_env: dict[str, str]
    bigquery_token: str | None = None

    def cli(self, args: list[str], context: dg.AssetExecutionContext) -> DbtCliInvocation:
        env = {**self.settings_env, **secrets_env(self.destination.connection.credentials(), self.bigquery_token)}
        prepare_duckdb(env)
        # DbtCliResource passes this process's environment to dbt and nothing else; the
        # variables are set only while it starts the dbt process.
        with _environment(env):
            return self.dbt.cli(args, context=context)

    @property
    def duckdb_path(self) -> Path | None:
        """The database file dbt builds on the DuckDB target; None on BigQuery and Athena."""
        if self.settings_env["NOTIF_EXPORT_DBT_TARGET"] != "duckdb":
            return None
        return Path(self.settings_env["NOTIF_EXPORT_DUCKDB_PATH"])


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
