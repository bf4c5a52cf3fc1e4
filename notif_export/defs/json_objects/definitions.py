"""The JSON objects destination: one asset per data point of NOTIF_EXPORT_JSON_DATA_POINTS, and
the job the sync sensor requests for them (one data point selected per run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from notif_export.defs.json_objects.assets import JSON_GROUP, build_json_assets
from notif_export.defs.shared.runs import JSON_JOB_NAME
from notif_export.lib.settings import Settings

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def json_objects_job(settings: Settings) -> UnresolvedAssetJobDefinition | None:
    if not settings.json_destination.data_points:
        return None
    return dg.define_asset_job(JSON_JOB_NAME, selection=dg.AssetSelection.groups(JSON_GROUP),
                               tags={"notif_export/kind": "sync"},
                               description="Started by the `sync` sensor: writes one JSON object per changed record "
                               "version of one data point.")


def build_defs(settings: Settings) -> dg.Definitions:
    # The job comes with the sync sensor that targets it.
    return dg.Definitions(assets=build_json_assets(settings))
