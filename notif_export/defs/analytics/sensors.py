"""Rebuild the models once after each sync tick's runs have all finished (not after every run)."""

import dagster as dg

from notif_export.defs.shared.runs import (
    RECONCILE_CHECK_NAME,
    SYNC_TICK_RUNS_TAG,
    SYNC_TICK_TAG,
    UNFINISHED,
)
from notif_export.lib.analytics import ready_sync_ticks
from notif_export.lib.run_status import SYNC_JOB_NAME

RECENT_SYNC_RUNS = 500  # far more than the runs of the ticks a sensor interval can leave pending


def build_analytics_sensor(build_job: dg.JobDefinition, interval_seconds: int,
                           data_points: tuple[str, ...]) -> dg.SensorDefinition:
    reconcile_checks = [dg.AssetCheckKey(dg.AssetKey(name), RECONCILE_CHECK_NAME) for name in data_points]

    @dg.sensor(
        name="analytics_after_sync",
        job=build_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs `dbt build` once the runs of a sync tick have all finished and at least "
        "one of them succeeded, no build is running and no reconciliation check failed; several "
        "ticks finished together give one build. Its cursor is the last tick handled.",
    )
    def analytics_after_sync(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # One build at a time: two would contend for the same tables (and DuckDB's file lock).
        # The next one starts once this one ends, covering every tick finished meanwhile.
        if context.instance.get_runs(filters=dg.RunsFilter(job_name=build_job.name, statuses=UNFINISHED), limit=1):
            return dg.SensorResult(skip_reason="the previous analytics build is still running")
        # Tables built from a bucket known to differ from the source would pass the drift on.
        failed = [key.asset_key.to_user_string() for key in reconcile_checks
                  if (record := context.instance.get_latest_asset_check_evaluation_record(key))
                  and record.status.value == "FAILED"]
        if failed:
            return dg.SensorResult(skip_reason=f"the last reconciliation found drift it could not repair in "
                                               f"{', '.join(failed)}: no analytics build until it passes")
        runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME), limit=RECENT_SYNC_RUNS)
        tick, changed = ready_sync_ticks(
            ((r.tags[SYNC_TICK_TAG], int(r.tags[SYNC_TICK_RUNS_TAG]), r.status.value)
             for r in runs if SYNC_TICK_TAG in r.tags),
            after=context.cursor,
        )
        if tick is None:
            return dg.SensorResult(skip_reason="no sync tick has finished since the last build")
        if not changed:
            return dg.SensorResult(skip_reason=f"the sync runs up to tick {tick} all failed", cursor=tick)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"analytics-after-{tick}", tags={SYNC_TICK_TAG: tick})],
            cursor=tick,
        )

    return analytics_after_sync
