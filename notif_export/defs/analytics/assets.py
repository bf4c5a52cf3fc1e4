"""The dbt models as assets downstream of the exports; dbt tests are their asset checks."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, dbt_assets

from notif_export.defs.analytics.resources import AnalyticsResource, dbt_project

ANALYTICS_GROUP = "analytics"


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
    )
    def analytics_models(context: dg.AssetExecutionContext, analytics: AnalyticsResource):
        yield from analytics.cli(["build"], context=context).stream()

    return analytics_models
