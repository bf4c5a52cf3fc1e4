"""The dbt models as assets, the `build_analytics` job and the sensor that runs it after a sync."""

import dagster as dg
from dagster_dbt import DbtCliResource

from notif_export.defs.analytics.assets import build_analytics_assets
from notif_export.defs.analytics.resources import AnalyticsResource, dbt_project
from notif_export.defs.analytics.sensors import build_analytics_sensor
from notif_export.defs.shared.resources import build_resources
from notif_export.lib.analytics import dbt_env, dbt_executable
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    models = build_analytics_assets()
    build_analytics = dg.define_asset_job(
        "build_analytics", selection=dg.AssetSelection.assets(models),
        description="`dbt build` of dbt_project/ over the exported files (models and their tests).",
    )
    analytics = AnalyticsResource(
        dbt=DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        destination=build_resources(settings)["destination"],
        settings_env=dbt_env(settings),
        bigquery_token=dg.EnvVar("NOTIF_EXPORT_BIGQUERY_TOKEN") if settings.dbt.bigquery_token else None,
    )
    return dg.Definitions(
        assets=[models],
        jobs=[build_analytics],
        sensors=[build_analytics_sensor(build_analytics, interval_seconds=60, data_points=settings.data_points)],
        resources={"analytics": analytics},
    )
