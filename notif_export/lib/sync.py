"""Which hours must be rewritten: the sync's state and its rules, with no Dagster in it.

Per data point the state keeps a *position* (the newest `updated_at` handed to a rewrite) and,
for late commits, a fingerprint of every hour's rows whose `updated_at` lies in the overlap
window just below the position.

Late commits. A transaction that commits after a tick but stamped `updated_at` before it (a long
transaction, a writer's clock behind) is invisible to that tick and then falls below the
position. So each tick scans from `position - overlap` (an index range scan on `updated_at`), and
an hour is dirty when it has a row newer than the position *or* its rows in the window no
longer match the fingerprint taken at the last tick (a row appeared there or changed there).
Only the overlap window is rescanned and only hours that really changed are rewritten. Commits
later than the overlap (default 10 minutes) after their `updated_at` are not detected.

At least once. The hours of every requested run stay in the state until the run succeeds; a
failed or cancelled run's hours are requested again.

Cold hours (optional, `ColdCadence`). In a large workspace statuses keep changing for days, so
most ticks would rewrite every hour of the last days for a handful of changed rows each. With a
cadence, a dirty hour whose rows are all older than `after` is not rewritten at once: it joins
the state's `deferred` hours, and all deferred hours are rewritten together by the first tick at
least `every` after the previous such rewrite (or after the data point started syncing), even
if nothing else changes. Each cold hour is then rewritten at most once per `every` (plus the
tick it turns cold in), and a change to it reaches the bucket at most `every` + one interval
later than without the cadence. Retries are never deferred, and an hour rewritten for any
reason leaves the deferred ones (its run exports its latest state). Turning the cadence off
rewrites the deferred hours at the next tick.

Data point rules (the connector's): a data point seen for the first time starts at the newest
`updated_at` (going forward only); a removed one keeps its position and is marked disabled; a
re-enabled one resumes from its old position, so everything changed since it stopped is
exported; a paused sensor simply ticks later from the same positions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from notif_export.lib.contract import DataPoint
from notif_export.lib.hours import (
    describe_hours,
    epoch_us,
    hour_key,
    hour_start,
    parse_hour,
)
from notif_export.lib.source import SourceDatabase


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class DataPointState:
    position: str | None = None                                   # ISO updated_at, or None: from the start
    window: dict[str, list[int]] = field(default_factory=dict)    # hour -> [rows, sum of updated_at µs]
    pending: dict[str, list[str]] = field(default_factory=dict)   # run key -> hours it rewrites
    requested_at: dict[str, str] = field(default_factory=dict)    # run key -> when it was requested
    enabled_since: str | None = None
    disabled_since: str | None = None
    deferred: dict[str, str] = field(default_factory=dict)        # cold hour -> why it is dirty
    cold_rewritten_at: str | None = None                          # the last rewrite of the deferred hours

    def await_run(self, run_key: str, hours: list[str], now: datetime) -> None:
        self.pending[run_key] = hours
        self.requested_at[run_key] = _iso(now)


@dataclass
class ObjectState(DataPointState):
    """A data point written as JSON objects: the same position, window and rules, and per
    awaited run the record versions it writes (`ObjectWindow`s), to request again if it fails."""

    windows: dict[str, list[dict]] = field(default_factory=dict)  # run key -> its ObjectWindows

    @classmethod
    def of(cls, state: DataPointState) -> ObjectState:
        values = asdict(state)
        values["windows"] = {k: w for k, w in values.get("windows", {}).items() if k in state.pending}
        return cls(**values)


@dataclass
class SyncState:
    data_points: dict[str, DataPointState] = field(default_factory=dict)
    objects: dict[str, ObjectState] = field(default_factory=dict)  # the JSON objects destination's

    def to_json(self) -> str:
        return json.dumps({"data_points": {k: asdict(v) for k, v in self.data_points.items()},
                           "objects": {k: asdict(v) for k, v in self.objects.items()}}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> SyncState:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({k: DataPointState(**v) for k, v in raw["data_points"].items()},
                   {k: ObjectState(**v) for k, v in raw.get("objects", {}).items()})


@dataclass(frozen=True)
class ColdCadence:
    """Hours whose rows are all older than `after` are rewritten at most every `every`."""

    after: timedelta
    every: timedelta

    def newest_cold_hour(self, now: datetime) -> datetime:
        """The newest hour that has ended at least `after` before `now`."""
        return hour_start(now - self.after) - timedelta(hours=1)

    def is_cold(self, hour: str, now: datetime) -> bool:
        return parse_hour(hour) <= self.newest_cold_hour(now)

    def extra_staleness(self, interval: timedelta) -> timedelta:
        """How much later than a hot hour's a cold hour's change may reach the bucket: it waits
        for the next rewrite of the deferred hours (at most `every` after the last one), which
        happens at the first tick after that."""
        return self.every + interval


@dataclass
class Scan:
    """Rows whose updated_at is above some floor: (created_at, updated_at) pairs."""

    floor: datetime | None
    rows: list[tuple[datetime, datetime]]


def fingerprints(rows: Iterable[tuple[datetime, datetime]], low: datetime | None, high: datetime | None) -> dict[str, list[int]]:
    """Per created_at hour: count and µs-sum of updated_at for rows with low < updated_at <= high."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for created, updated in rows:
        if (low is None or updated > low) and (high is None or updated <= high):
            fp = out[hour_key(created)]
            fp[0] += 1
            fp[1] += epoch_us(updated)
    return dict(out)


@dataclass
class DirtyHours:
    """What one tick does for one data point: the hours to rewrite, and why."""

    hours: list[str]                    # hours to rewrite, sorted
    reasons: dict[str, str]             # hour -> why
    state: DataPointState
    newly_deferred: list[str] = field(default_factory=list)  # cold hours this tick left to the cadence
    late: list[str] = field(default_factory=list)   # hours whose overlap window changed, sorted


def scan_updates(db: SourceDatabase, dp: DataPoint, state: DataPointState | None, overlap: timedelta) -> Scan:
    """The rows a tick looks at: above the position minus the overlap; for a new data point,
    the overlap window below its newest update (to fingerprint it)."""
    top = db.max_updated_at(dp) if is_new(state) else _dt(state.position)
    floor = top - overlap if top else None
    if is_new(state) and top is None:
        return Scan(None, [])  # an empty table
    return Scan(floor, db.updates_since(dp, floor))


def is_new(state: DataPointState | None) -> bool:
    """Never synced yet (first setup, or a data point added since): it starts going forward."""
    return state is None or state.enabled_since is None


def dirty_hours(
    state: DataPointState | None,
    scan: Scan,
    run_outcomes: dict[str, str],
    overlap: timedelta,
    enabled: bool,
    first_hour: str,
    now: datetime,
    run_timeout: timedelta = timedelta(minutes=15),
    cold: ColdCadence | None = None,
) -> DirtyHours:
    """One tick for one data point.

    `state` is None the first time the data point is seen; `scan` comes from `scan_updates`.
    `run_outcomes` maps the state's pending run keys to "success", "failure", "pending" or
    "missing" (not in the instance: a missing run is requested again after `run_timeout`).
    Hours before `first_hour` (the first partition) or after `now`'s are outside the export.

    `now` is the tick's cutoff: the runs export only rows created before it
    (`rewrite_hour(created_before=...)`), the same for every data point, so a child row in the
    bucket always has its parent there too. Rows updated after it are the next tick's position
    and fingerprints; their hours are rewritten now as well when they were created before it.

    `cold`: the cadence of cold hours (None: every dirty hour is rewritten at once).
    """
    if not enabled:
        state = state or DataPointState()
        if state.disabled_since is None:
            state.disabled_since, state.pending, state.requested_at = _iso(now), {}, {}
        return DirtyHours([], {}, state)
    rows = [(created, updated) for created, updated in scan.rows if updated <= now]
    if is_new(state):
        # With a window scanned but all of it after the cut, the cut is where it starts: from
        # nowhere (None) it would export the whole history at the next tick.
        newest = max((u for _, u in rows), default=now if scan.floor is not None else None)
        fresh = DataPointState(position=_iso(newest), enabled_since=_iso(now))
        fresh.window = fingerprints(rows, newest - overlap if newest else None, newest)
        fresh.cold_rewritten_at = _iso(now) if cold else None  # the cadence counts from the start
        return DirtyHours([], {}, fresh)

    reasons: dict[str, str] = {}
    retried: set[str] = set()
    if state.disabled_since is not None:
        state.disabled_since, state.enabled_since = None, _iso(now)
    for run_key, retry in finished_runs(state.requested_at, run_outcomes, now, run_timeout):
        hours = state.pending.pop(run_key, [])
        if retry:
            retried.update(hours)
            reasons.update({h: retry for h in hours})

    position = _dt(state.position)
    # A row created before the cut but changed again since (it waits for the next tick's position)
    # is exported now too, in its current state: its children created before the cut are.
    for created, updated in scan.rows:
        if (updated <= now or created < now) and (position is None or updated > position):
            reasons.setdefault(hour_key(created), "rows updated since the last sync")
    # The window as it is now against the window as it was at the last tick.
    window_now = fingerprints(rows, scan.floor, position)
    late = sorted(h for h in window_now.keys() | state.window.keys() if window_now.get(h) != state.window.get(h))
    for hour in late:
        reasons.setdefault(hour, "late commit inside the overlap window")

    newest_seen = max((u for _, u in rows), default=position)
    state.position = _iso(newest_seen)
    state.window = fingerprints(rows, newest_seen - overlap if newest_seen else None, newest_seen)
    # Hours after the cutoff's are not exportable yet (a writer's clock ahead, a year-9999 typo):
    # the runs export only rows created before the cutoff, and the partitions end at the present.
    reasons = {h: r for h, r in reasons.items() if first_hour <= h <= hour_key(now)}
    state.deferred = {h: r for h, r in state.deferred.items() if first_hour <= h}
    newly_deferred = defer_cold_hours(state, reasons, retried, cold, now)
    return DirtyHours(sorted(reasons), reasons, state, newly_deferred,
                      [h for h in late if first_hour <= h <= hour_key(now)])


def _outcome(run_key: str, outcome: str, requested_at: dict[str, str], now: datetime, run_timeout: timedelta) -> str:
    """A run still missing from the instance `run_timeout` after its request is "lost"; until
    then it may only be slow to appear."""
    requested = _dt(requested_at.get(run_key))
    if outcome == "missing" and requested is not None and now - requested > run_timeout:
        return "lost"
    return outcome


IN_FLIGHT = ("queued", "pending", "missing")


def runs_in_flight(requested_at: dict[str, str], run_outcomes: dict[str, str], now: datetime,
                   run_timeout: timedelta) -> list[str]:
    """The awaited runs that may still write: queued, running, or requested and not in the
    instance yet."""
    return [run_key for run_key, outcome in run_outcomes.items()
            if _outcome(run_key, outcome, requested_at, now, run_timeout) in IN_FLIGHT]


def overdue_runs(requested_at: dict[str, str], run_keys: Iterable[str], now: datetime,
                 run_timeout: timedelta) -> list[str]:
    """The runs of `run_keys` requested more than `run_timeout` ago (still in flight: run
    monitoring fails a run started too long ago, not one left in the queue)."""
    return [key for key in run_keys if (at := _dt(requested_at.get(key))) is not None and now - at > run_timeout]


def finished_runs(requested_at: dict[str, str], run_outcomes: dict[str, str], now: datetime,
                  run_timeout: timedelta) -> list[tuple[str, str | None]]:
    """The runs that ended since the last tick, each with why its work is requested again (None:
    it succeeded), dropped from `requested_at`."""
    finished = []
    for run_key, outcome in run_outcomes.items():
        outcome = _outcome(run_key, outcome, requested_at, now, run_timeout)
        if outcome in IN_FLIGHT:
            continue
        requested_at.pop(run_key, None)
        retry = {"failure": f"retry: run {run_key} did not succeed",
                 "lost": f"retry: run {run_key} never appeared in the instance within "
                         f"{int(run_timeout.total_seconds())}s of its request"}.get(outcome)
        finished.append((run_key, retry))
    return finished


def defer_cold_hours(state: DataPointState, reasons: dict[str, str], retried: set[str],
                     cold: ColdCadence | None, now: datetime) -> list[str]:
    """Move the cold hours of `reasons` (but retries) to `state.deferred`; when the cadence is
    due (or off), move all deferred hours back into `reasons`. Returns the hours that start
    waiting at this tick."""
    newly_deferred = []
    if cold is not None:
        for hour in [h for h in reasons if h not in retried and cold.is_cold(h, now)]:
            if hour not in state.deferred:
                newly_deferred.append(hour)
                state.deferred[hour] = reasons[hour]
            del reasons[hour]
    last = _dt(state.cold_rewritten_at)
    if state.deferred and (cold is None or last is None or now - last >= cold.every):
        for hour, why in state.deferred.items():
            reasons.setdefault(hour, f"cold hour (deferred): {why}")
        state.deferred = {}
        state.cold_rewritten_at = _iso(now)
    for hour in reasons:  # rewritten now with its latest state: nothing left to defer
        state.deferred.pop(hour, None)
    return [h for h in newly_deferred if h in state.deferred]


@dataclass(frozen=True)
class ObjectWindow:
    """The record versions one JSON objects run writes: every row with `after` < updated_at <=
    `until` and, in the `late_hours` (created_at hours whose overlap window changed: a late
    commit), also those with `late_after` < updated_at <= `after`."""

    after: str | None
    until: str | None
    late_after: str | None = None
    late_hours: tuple[str, ...] = ()
    reason: str = "rows updated since the last sync"

    @classmethod
    def from_dict(cls, raw: dict) -> ObjectWindow:
        return cls(**{**raw, "late_hours": tuple(raw.get("late_hours", ()))})

    def describe(self) -> str:
        late = f"; late commits in {describe_hours(self.late_hours)}" if self.late_hours else ""
        return f"{self.reason}: updated_at in ({self.after or 'the start'}, {self.until}]{late}"


@dataclass
class ObjectTick:
    """What one tick does for one JSON objects data point: the windows to write, and its state."""

    windows: list[ObjectWindow]
    state: ObjectState


def object_windows(
    state: ObjectState | None,
    scan: Scan | None,
    run_outcomes: dict[str, str],
    overlap: timedelta,
    enabled: bool,
    now: datetime,
    run_timeout: timedelta = timedelta(minutes=15),
) -> ObjectTick:
    """One tick for one data point written as JSON objects: `dirty_hours`'s rules (going
    forward only when new, catching up from the position when resumed or re-enabled, the same
    overlap window for late commits, at least once) with record versions instead of hours.

    The versions past the position become one window; a late commit makes its hour's whole
    overlap window written again (the versions already written get the same keys again when
    the key template holds the event id). A failed or lost run's windows are requested again.
    """
    if not enabled or is_new(state):
        dirty = dirty_hours(state, scan or Scan(None, []), {}, overlap, enabled, "", now, run_timeout)
        return ObjectTick([], ObjectState.of(dirty.state))
    windows = []
    for run_key, retry in finished_runs(state.requested_at, run_outcomes, now, run_timeout):
        state.pending.pop(run_key, None)
        retried = [ObjectWindow.from_dict(w) for w in state.windows.pop(run_key, [])]
        if retry:
            windows += [ObjectWindow(w.after, w.until, w.late_after, w.late_hours, retry) for w in retried]
    after = _dt(state.position)
    dirty = dirty_hours(state, scan, {}, overlap, True, "", now, run_timeout)
    until = _dt(dirty.state.position)
    moved = until is not None and (after is None or until > after)
    # Without a position yet (a data point that started on an empty table), the window from the
    # start already holds every version: no late-commit hours to read again.
    late = tuple(dirty.late) if after is not None else ()
    if late or moved:
        windows.append(ObjectWindow(_iso(after), _iso(until), _iso(after - overlap) if after else None,
                                    late, "rows updated since the last sync" if moved
                                    else "late commit inside the overlap window"))
    return ObjectTick(windows, ObjectState.of(dirty.state))
