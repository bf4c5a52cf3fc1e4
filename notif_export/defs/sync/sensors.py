"""The sync sensor: every interval, request one run per data point that rewrites its dirty hours,
and one per data point written as JSON objects that writes its changed record versions."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import dagster as dg

from notif_export.defs.json_objects.assets import json_asset_name, window_config
from notif_export.defs.shared.resources import SourceResource
from notif_export.defs.shared.runs import (
    DATA_POINT_TAG,
    FAILED,
    HOURS_TAG,
    JSON_JOB_NAME,
    MAX_RUNTIME_TAG,
    QUEUED,
    SOURCE_POOL,
    SYNC_RUN_TAG,
    SYNC_TICK_RUNS_TAG,
    SYNC_TICK_TAG,
)
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.hours import describe_hours
from notif_export.lib.settings import Settings
from notif_export.lib.source import SourceDatabase
from notif_export.lib.sync import (
    SyncState,
    dirty_hours,
    is_new,
    object_windows,
    overdue_runs,
    runs_in_flight,
    scan_updates,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def run_outcome(instance: dg.DagsterInstance, run_key: str, now: datetime, run_timeout: timedelta) -> str:
    # The newest run with the key: a retry by the instance's run_retries carries its parent's tags.
    records = instance.get_run_records(filters=dg.RunsFilter(tags={SYNC_RUN_TAG: run_key}), limit=1)
    if not records:
        return "missing"  # requested, not launched yet (or lost: requested again after a timeout)
    run = records[0].dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return "success"
    if run.status in QUEUED:
        return "queued"
    if run.status not in FAILED:
        return "pending"
    # A failed run that run_retries will re-execute, with its own cut, is not over: requesting its
    # hours again now would let the retry land after the newer cut. Unless no retry came within
    # the run timeout (the daemon that retries runs down).
    ended = records[0].end_time
    if (run.is_complete_and_waiting_to_retry and ended
            and now - datetime.fromtimestamp(ended, timezone.utc) < run_timeout):
        return "pending"
    return "failure"


def build_sync_sensor(settings: Settings, job: dg.JobDefinition,
                      json_job: UnresolvedAssetJobDefinition | None = None) -> dg.SensorDefinition:
    overlap = timedelta(seconds=settings.sync_overlap_seconds)
    grace = timedelta(seconds=settings.sync_commit_grace_seconds)
    run_timeout = timedelta(seconds=settings.sync_run_timeout_seconds)
    cold = settings.cold_cadence
    cadence = (f" Hours older than {settings.sync_cold_after_hours} h are rewritten at most every "
               f"{settings.sync_cold_rewrite_minutes} minutes (their changes wait in the cursor)." if cold else "")
    json_data_points = settings.json_destination.data_points
    json_text = (f"; writes one JSON object per changed record version of {', '.join(json_data_points)}, "
                 "one run per data point" if json_data_points else "")

    @dg.sensor(
        name="sync",
        jobs=[job, json_job] if json_job else [job],
        minimum_interval_seconds=settings.sync_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Every {settings.sync_interval_seconds}s: finds the hours of {', '.join(settings.data_points)} "
            f"whose rows changed (by updated_at) and rewrites exactly those, one run per data point{json_text}. "
            "Its cursor is the sync state: per data point the position, the overlap window's "
            "fingerprints, the runs awaited, and since when it is enabled or disabled." + cadence
        ),
    )
    def sync(context: dg.SensorEvaluationContext, source: SourceResource) -> dg.SensorResult:
        state = SyncState.from_json(context.cursor)
        # The tick's cut: every run it requests exports the source as of this moment, held back
        # by the commit grace so that what a writer stamped before it is committed when they read.
        now = datetime.now(timezone.utc) - grace
        outcomes = {name: {key: run_outcome(context.instance, key, now, run_timeout) for key in current.pending}
                    for name, current in state.data_points.items()}
        # One cut at a time: while a run of an earlier tick may still write, this tick requests
        # none (its changes wait in the state). Otherwise a run with the older cut could land
        # after a newer one and put an hour back, or leave the newer cut's children without
        # their parents.
        in_flight = {name: keys for name, current in state.data_points.items()
                     if (keys := runs_in_flight(current.requested_at, outcomes[name], now, run_timeout))}
        db = source.open()
        requests = []
        try:
            if in_flight:
                context.log.info(f"runs of an earlier tick still going ({', '.join(sum(in_flight.values(), []))}): "
                                 "the files' changes wait for the next tick")
                overdue = [key for name, keys in in_flight.items()
                           for key in overdue_runs(state.data_points[name].requested_at, keys, now, run_timeout)]
                if overdue:
                    context.log.warning(
                        f"the sync has waited more than {settings.sync_run_timeout_seconds}s for "
                        f"{', '.join(overdue)}: a run still queued waits for its pool (`dagster instance "
                        f"concurrency get {SOURCE_POOL}`) or the daemon's run queue; cancel it in the UI and the "
                        "next tick requests its hours again")
            for name, dp in DATA_POINTS.items() if not in_flight else ():
                current = state.data_points.get(name)
                enabled = name in settings.data_points
                scan = scan_updates(db, dp, current, overlap) if enabled else None
                dirty = dirty_hours(current, scan, outcomes.get(name, {}), overlap, enabled, settings.start_key, now,
                                    run_timeout, cold)
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
            object_requests = [request for name, dp in DATA_POINTS.items()
                               if (request := _json_objects_tick(context, db, state, name, dp, json_data_points,
                                                                 overlap, run_timeout, now, settings))]
        finally:
            db.dispose()
        tick = f"{now:%Y%m%dT%H%M%S.%f}"
        # The analytics wait for all the files' runs of a tick (counted here); the objects' runs
        # carry the tick only.
        requests = [request.with_replaced_attrs(tags={**request.tags, SYNC_TICK_TAG: tick,
                                                      SYNC_TICK_RUNS_TAG: str(len(requests))})
                    for request in requests]
        requests += [request.with_replaced_attrs(tags={**request.tags, SYNC_TICK_TAG: tick})
                     for request in object_requests]
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=state.to_json())
        deferred = sum(len(dp.deferred) for dp in state.data_points.values())
        skip_reason = ("waiting for the runs of an earlier tick" if in_flight
                       else f"no hour to rewrite now ({deferred} cold hours deferred)" if deferred
                       else "nothing changed since the last tick")
        return dg.SensorResult(skip_reason=skip_reason, cursor=state.to_json())

    return sync


def _json_objects_tick(context: dg.SensorEvaluationContext, db: SourceDatabase, state: SyncState, name: str,
                       dp: DataPoint, enabled_names: list[str], overlap: timedelta, run_timeout: timedelta,
                       now: datetime, settings: Settings) -> dg.RunRequest | None:
    """One tick of one data point written as JSON objects: its run's request, if anything changed."""
    current = state.objects.get(name)
    enabled = name in enabled_names
    if current is None and not enabled:
        return None  # never written as objects: nothing to remember
    outcomes = {key: run_outcome(context.instance, key, now, run_timeout)
                for key in (current.pending if current else {})}
    if enabled and "queued" in outcomes.values():
        context.log.info(f"{name} (JSON objects): its last run has not started yet; changes wait for the next tick")
        return None
    scan = scan_updates(db, dp, current, overlap) if enabled else None
    tick = object_windows(current, scan, outcomes, overlap, enabled, now, run_timeout)
    state.objects[name] = tick.state
    if not tick.windows:
        if enabled and is_new(current):
            context.log.info(f"{name} (JSON objects): starts from {tick.state.position or 'its first row'} "
                             "(going forward only)")
        return None
    run_key = f"{json_asset_name(name)}-{uuid.uuid4().hex[:12]}"
    tick.state.await_run(run_key, sorted({h for w in tick.windows for h in w.late_hours}), now)
    tick.state.windows[run_key] = [asdict(w) for w in tick.windows]
    context.log.info(f"{name} (JSON objects): " + "; ".join(w.describe() for w in tick.windows))
    return dg.RunRequest(
        run_key=run_key,
        job_name=JSON_JOB_NAME,
        asset_selection=[dg.AssetKey(json_asset_name(name))],
        run_config={"ops": {json_asset_name(name): {"config": {
            "windows": [window_config(w) for w in tick.windows]}}}},
        tags={SYNC_RUN_TAG: run_key, DATA_POINT_TAG: name, MAX_RUNTIME_TAG: str(settings.sync_run_timeout_seconds)},
    )
