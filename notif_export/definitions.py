"""The Dagster code location: assembled from notif_export/defs/<area>/ when Dagster loads it."""

from __future__ import annotations

import os

import dagster as dg

from dagster_dbt import DbtCliResource

from notif_export.defs.analytics.assets import build_analytics_assets
from notif_export.defs.analytics.resources import AnalyticsResource, dbt_project
from notif_export.defs.analytics.sensors import build_analytics_sensor
from notif_export.defs.checks.jobs import check_bucket_access
from notif_export.defs.exports.assets import build_export_assets
from notif_export.defs.exports.partitions import hourly_partitions
from notif_export.defs.exports.resources import build_resources
from notif_export.defs.sync.jobs import sync_dirty_hours
from notif_export.defs.sync.sensors import build_sync_sensor
from notif_export.lib.analytics import dbt_env, dbt_executable
from notif_export.lib.settings import Settings


def build_definitions(env: dict[str, str]) -> dg.Definitions:
    config = Settings.from_env(env)
    partitions_def = hourly_partitions(config.start)
    resources = build_resources(config, env)
    analytics_models = build_analytics_assets()
    build_analytics = dg.define_asset_job(
        "build_analytics", selection=dg.AssetSelection.assets(analytics_models),
        description="`dbt build` of dbt_project/ over the exported files (models and their tests).",
    )
    resources["analytics"] = AnalyticsResource(
        dbt=DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        destination=resources["destination"],
        settings_env=dbt_env(config, resources["destination"].destination),
    )
    return dg.Definitions(
        assets=[*build_export_assets(partitions_def), analytics_models],
        jobs=[sync_dirty_hours, build_analytics, check_bucket_access],
        sensors=[
            build_sync_sensor(config, sync_dirty_hours, config.start_key),
            build_analytics_sensor(sync_dirty_hours, build_analytics, interval_seconds=60),
        ],
        resources=resources,
    )


@dg.definitions
def defs() -> dg.Definitions:
    # The environment is read here, once, when Dagster loads the code location; never at import.
    return build_definitions(dict(os.environ))
