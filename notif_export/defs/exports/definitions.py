"""The export assets, one per data point, on the hourly partitions from NOTIF_EXPORT_START."""

import dagster as dg

from notif_export.defs.exports.assets import build_export_assets
from notif_export.defs.shared.partitions import hourly_partitions
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_export_assets(settings, hourly_partitions(settings.start)))
