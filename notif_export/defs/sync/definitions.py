"""The five-minute sync: the `sync` sensor and the `sync_dirty_hours` job it requests."""

import dagster as dg

from notif_export.defs.sync.jobs import build_sync_job
from notif_export.defs.sync.sensors import build_sync_sensor
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    sync_job = build_sync_job(settings)
    return dg.Definitions(jobs=[sync_job], sensors=[build_sync_sensor(settings, sync_job)])
