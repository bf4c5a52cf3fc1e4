"""The Dagster code location: assembled from notif_export/defs/<area>/ when Dagster loads it."""

from __future__ import annotations

import os

import dagster as dg

from notif_export.defs.exports.assets import build_export_assets
from notif_export.defs.exports.partitions import hourly_partitions
from notif_export.defs.exports.resources import build_resources
from notif_export.defs.sync.jobs import sync_dirty_hours
from notif_export.defs.sync.sensors import build_sync_sensor
from notif_export.lib.settings import Settings


def build_definitions(env: dict[str, str]) -> dg.Definitions:
    config = Settings.from_env(env)
    partitions_def = hourly_partitions(config.start)
    return dg.Definitions(
        assets=build_export_assets(partitions_def),
        jobs=[sync_dirty_hours],
        sensors=[build_sync_sensor(config, sync_dirty_hours, config.start_key)],
        resources=build_resources(config, env),
    )


@dg.definitions
def defs() -> dg.Definitions:
    # The environment is read here, once, when Dagster loads the code location; never at import.
    return build_definitions(dict(os.environ))
