"""The sync sensor: every interval, request one run per data point that rewrites its dirty hours."""

import uuid
from datetime import datetime, timedelta, timezone

import dagster as dg

from notif_export.defs.shared.resources import SourceResource
from notif_export.defs.shared.runs import (
    DATA_POINT_TAG,
    FAILED,
    HOURS_TAG,
    MAX_RUNTIME_TAG,
    QUEUED,
    SYNC_RUN_TAG,
    SYNC_TICK_RUNS_TAG,
    SYNC_TICK_TAG,
)
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.hours import describe_hours
from notif_export.lib.settings import Settings
from notif_export.lib.sync import SyncState, dirty_hours, is_new, scan_updates


def run_outcome(instance: dg.DagsterInstance, run_key: str) -> str:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={SYNC_RUN_TAG: run_key}), limit=1)
    if not runs:
        return "missing"  # requested, not launched yet (or lost: requested again after a timeout)
    if runs[0].status == dg.DagsterRunStatus.SUCCESS:
        return "success"
    if runs[0].status in QUEUED:
        return "queued"
    return "failure" if runs[0].status in FAILED else "pending"


def build_sync_sensor(settings: Settings, job: dg.JobDefinition) -> dg.SensorDefinition:
    overlap = timedelta(seconds=settings.sync_overlap_seconds)
    run_timeout = timedelta(seconds=settings.sync_run_timeout_seconds)
    cold = settings.cold_cadence
    cadence = (f" Hours older than {settings.sync_cold_after_hours} h are rewritten at most every "
               f"{settings.sync_cold_rewrite_minutes} minutes (their changes wait in the cursor)." if cold else "")

    @dg.sensor(
        name="sync",
        job=job,
        minimum_interval_seconds=settings.sync_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Every {settings.sync_interval_seconds}s: finds the hours of {', '.join(settings.data_points)} "
            "whose rows changed (by updated_at) and rewrites exactly those, one run per data point. "
            "Its cursor is the sync state: per data point the position, the overlap window's "
            "fingerprints, the runs awaited, and since when it is enabled or disabled." + cadence
        ),
    )
    def sync(context: dg.SensorEvaluationContext, source: SourceResource) -> dg.SensorResult:
        state = SyncState.from_json(context.cursor)
        # The tick's cutoff: every run it requests exports the source as of this moment.
        now = datetime.now(timezone.utc)
        db = source.open()
        requests = []
        try:
            for name, dp in DATA_POINTS.items():
                current = state.data_points.get(name)
                enabled = name in settings.data_points
                scan = scan_updates(db, dp, current, overlap) if enabled else None
                outcomes = {key: run_outcome(context.instance, key) for key in (current.pending if current else {})}
                if enabled and "queued" in outcomes.values():
                    # One queued run per data point at most: runs slower than the interval would
                    # otherwise pile up in the queue. Its state is kept, so the next tick finds
                    # these changes.
                    context.log.info(f"{name}: its last run has not started yet; changes wait for the next tick")
                    continue
                dirty = dirty_hours(current, scan, outcomes, overlap, enabled, settings.start_key, now, run_timeout,
                                    cold)
                state.data_points[name] = dirty.state
                if dirty.newly_deferred:
                    due = datetime.fromisoformat(dirty.state.cold_rewritten_at) + cold.every
                    context.log.info(f"{name}: cold hours changed, rewritten with the other deferred ones "
                                     f"({len(dirty.state.deferred)}) at the first tick after {due:%H:%M:%S} UTC: "
                                     f"{describe_hours(dirty.newly_deferred)}")
                if not dirty.hours:
                    if enabled and is_new(current):
                        context.log.info(f"{name}: starts syncing from {dirty.state.position or 'its first row'} "
                                         "(going forward only)")
                    continue
                run_key = f"{name}-{uuid.uuid4().hex[:12]}"
                dirty.state.await_run(run_key, dirty.hours, now)
                why: dict[str, list[str]] = {}
                for hour, reason in dirty.reasons.items():
                    why.setdefault(reason, []).append(hour)
                context.log.info(f"{name}: rewriting " + "; ".join(f"{r}: {describe_hours(h)}" for r, h in why.items()))
                requests.append(dg.RunRequest(
                    run_key=run_key,
                    run_config=dg.RunConfig(ops={"rewrite_dirty_hours": {"config": {
                        "data_point": name, "hours": dirty.hours, "created_before": now.isoformat()}}}),
                    # Run monitoring fails a run still going after this (its worker gone: a
                    # crash or a kill leaves it "started"), so run_retries and the next tick redo it.
                    tags={SYNC_RUN_TAG: run_key, DATA_POINT_TAG: name, HOURS_TAG: str(len(dirty.hours)),
                          MAX_RUNTIME_TAG: str(settings.sync_run_timeout_seconds)},
                ))
        finally:
            db.dispose()
        if requests:
            tick = {SYNC_TICK_TAG: f"{now:%Y%m%dT%H%M%S.%f}", SYNC_TICK_RUNS_TAG: str(len(requests))}
            requests = [request.with_replaced_attrs(tags={**request.tags, **tick}) for request in requests]
            return dg.SensorResult(run_requests=requests, cursor=state.to_json())
        deferred = sum(len(dp.deferred) for dp in state.data_points.values())
        return dg.SensorResult(skip_reason=f"no hour to rewrite now ({deferred} cold hours deferred)" if deferred
                               else "no hour changed since the last tick", cursor=state.to_json())

    return sync
