"""The dbt models as assets downstream of the exports; dbt tests are their asset checks; each
mart's materialization records its summary (rows, delivery rates) for Dagster to plot."""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, dbt_assets
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from notif_export.defs.analytics.resources import AnalyticsResource, dbt_project
from notif_export.defs.shared.runs import ANALYTICS_POOL
from notif_export.lib import marts
from notif_export.lib.analytics import analytics_lock

ANALYTICS_GROUP = "analytics"
# Dagster's own key for a table's row count: the UI shows it on the asset's page and in the catalog.
ROW_COUNT = "dagster/row_count"


class AnalyticsTranslator(DagsterDbtTranslator):
    """Models under an `analytics/` key prefix (the marts `messages`, `requests` and
    `workflow_executions` would otherwise take the export assets' keys); sources keep the key
    their `meta.dagster.asset_key` names: the export assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([ANALYTICS_GROUP, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return ANALYTICS_GROUP


def build_analytics_assets() -> dg.AssetsDefinition:
    if not dbt_project.manifest_path.exists():
        raise FileNotFoundError(
            f"the dbt manifest {dbt_project.manifest_path} is missing: run scripts/setup.sh "
            "(or `notif-export dbt parse`) to prepare it"
        )

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        dagster_dbt_translator=AnalyticsTranslator(),
        name="analytics_models",
        pool=ANALYTICS_POOL,
    )
    def analytics_models(context: dg.AssetExecutionContext, analytics: AnalyticsResource):
        if analytics.duckdb_path is None:
            # BigQuery and Athena: no summaries, as each would be a query billed by the warehouse
            # on every build.
            yield from analytics.cli(["build"], context=context).stream()
            return
        # Queued behind a `notif-export dbt` build or a query reading the database, instead of
        # failing on DuckDB's file lock.
        with analytics_lock(analytics.duckdb_path, waiting=lambda: context.log.info(
                "waiting for another build or a query of the analytics database to finish")):
            invocation = analytics.cli(["build"], context=context)
            yield from with_mart_summaries(invocation, analytics.duckdb_path, context.log)

    return analytics_models


def with_mart_summaries(invocation: DbtCliInvocation, database: Path, log: dg.DagsterLogManager) -> Iterator:
    """The build's events, each mart's output with its summary (`marts.summary`) as metadata:
    the row count under Dagster's own key (which dagster-dbt's `fetch_row_counts` records too),
    and the delivery rates.

    dbt holds the DuckDB file's write lock until it exits, so the events are collected first and
    the marts read afterwards. (dagster-dbt's `fetch_row_counts` waits the same way on DuckDB, but
    counts no views, and three marts are views, computes no rates, and opens the database through
    dbt's adapter, which needs the credentials dbt was started with.)
    """
    events, failure = [], None
    try:
        events.extend(invocation.stream())  # keeps the events read before an error
    except DagsterDbtCliRuntimeError as exc:  # a model or test failed: the marts built are recorded all the same
        failure = exc
    nodes = invocation.manifest["nodes"]
    outputs = [(i, nodes[event.metadata["unique_id"].text]) for i, event in enumerate(events)
               if isinstance(event, dg.Output)]
    try:
        with marts.connect(database) as con:
            for i, node in outputs:
                if node["fqn"][1] == "marts":
                    summary = marts.summary(con, node["schema"], node["alias"])
                    events[i] = events[i].with_metadata(
                        {**events[i].metadata, ROW_COUNT: summary.pop("rows"), **summary})
    except duckdb.Error as exc:
        # e.g. a build outside Dagster holds the file now: the materializations go unsummarized
        # rather than unrecorded.
        log.warning(f"mart summaries left out: {exc}")
    yield from events
    if failure is not None:
        raise failure
