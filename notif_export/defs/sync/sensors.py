"""The sync sensor: every interval, request one run per data point that rewrites its dirty hours."""

import uuid
from datetime import datetime, timedelta, timezone

import dagster as dg

from notif_export.defs.exports.resources import SourceResource
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.settings import Settings
from notif_export.lib.sync import SyncState, is_new, plan_data_point, scan_updates

SYNC_RUN_TAG = "notif_export/sync_run"
# Every run a tick requests carries the tick and how many runs it requested, so the analytics
# sensor can tell when all of a tick's runs have finished.
SYNC_TICK_TAG = "notif_export/sync_tick"
SYNC_TICK_RUNS_TAG = "notif_export/sync_tick_runs"
_FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def run_outcome(instance: dg.DagsterInstance, run_key: str) -> str:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={SYNC_RUN_TAG: run_key}), limit=1)
    if not runs:
        return "pending"  # requested by the last tick, not launched yet
    if runs[0].status == dg.DagsterRunStatus.SUCCESS:
        return "success"
    return "failure" if runs[0].status in _FAILED else "pending"


def build_sync_sensor(config: Settings, job: dg.JobDefinition, first_hour: str) -> dg.SensorDefinition:
    overlap = timedelta(seconds=config.sync_overlap_seconds)

    @dg.sensor(
        name="sync",
        job=job,
        minimum_interval_seconds=config.sync_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Every {config.sync_interval_seconds}s: finds the hours of {', '.join(config.data_points)} "
            "whose rows changed (by updated_at) and rewrites exactly those, one run per data point. "
            "Its cursor is the sync state: per data point the position, the overlap window's "
            "fingerprints, the runs awaited, and since when it is enabled or disabled."
        ),
    )
    def sync(context: dg.SensorEvaluationContext, source: SourceResource) -> dg.SensorResult:
        state = SyncState.from_json(context.cursor)
        now = datetime.now(timezone.utc)
        db = source.open()
        requests = []
        try:
            for name, dp in DATA_POINTS.items():
                current = state.data_points.get(name)
                enabled = name in config.data_points
                scan = scan_updates(db, dp, current, overlap) if enabled else None
                outcomes = {key: run_outcome(context.instance, key) for key in (current.pending if current else {})}
                plan = plan_data_point(current, scan, outcomes, overlap, enabled, first_hour, now)
                state.data_points[name] = plan.state
                if not plan.hours:
                    if enabled and is_new(current):
                        context.log.info(f"{name}: starts syncing from {plan.state.position or 'its first row'} (going forward only)")
                    continue
                run_key = f"{name}-{uuid.uuid4().hex[:12]}"
                plan.state.pending[run_key] = plan.hours
                why: dict[str, list[str]] = {}
                for hour, reason in plan.reasons.items():
                    why.setdefault(reason, []).append(hour)
                context.log.info(f"{name}: rewriting {len(plan.hours)} hours: "
                                 + "; ".join(f"{r}: {', '.join(h)}" for r, h in why.items()))
                requests.append(dg.RunRequest(
                    run_key=run_key,
                    run_config=dg.RunConfig(ops={"rewrite_dirty_hours": {"config": {"data_point": name, "hours": plan.hours}}}),
                    tags={SYNC_RUN_TAG: run_key, "notif_export/data_point": name, "notif_export/hours": str(len(plan.hours))},
                ))
        finally:
            db.dispose()
        if requests:
            tick = {SYNC_TICK_TAG: f"{now:%Y%m%dT%H%M%S.%f}", SYNC_TICK_RUNS_TAG: str(len(requests))}
            requests = [request.with_replaced_attrs(tags={**request.tags, **tick}) for request in requests]
            return dg.SensorResult(run_requests=requests, cursor=state.to_json())
        return dg.SensorResult(skip_reason="no hour changed since the last tick", cursor=state.to_json())

    return sync
