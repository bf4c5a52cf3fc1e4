"""Reconciliation: the bucket compared with the source on a schedule, drift repaired."""

import dagster as dg

from notif_export.defs.reconcile.checks import build_reconcile_checks
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    checks = build_reconcile_checks(settings)
    reconcile = dg.define_asset_job(
        "reconcile", selection=dg.AssetSelection.checks(*checks),
        description="Runs the bucket_matches_source check of every synced data point: compares the "
                    "recent hours with the source and rewrites those that drifted.",
    )
    schedule = dg.ScheduleDefinition(
        name="reconcile_schedule", job=reconcile, cron_schedule=settings.reconcile_cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every {settings.reconcile_interval_minutes} minutes "
                    "(NOTIF_EXPORT_RECONCILE_INTERVAL_MINUTES): the `reconcile` job.",
    )
    return dg.Definitions(asset_checks=checks, jobs=[reconcile], schedules=[schedule])
