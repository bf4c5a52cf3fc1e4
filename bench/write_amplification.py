"""Benchmark: the sync's write amplification (rows rewritten per row changed) at a large
workspace's shape, with the cadence for cold hours off (the default) and on (one or more
cadences, `--cadence AFTER_HOURS:MINUTES`), all in one run and fed the same changes.

The shape: `--per-day` messages a day (50M), diurnal (`--diurnal` 0.25: the peak hour 25% above
the day's mean, at 14:00 UTC), statuses changing as the simulator's lifecycle has them (delivery
in seconds, seen minutes to days later, then clicks, reads, dismissals), `--history-hours` of
traffic before the first tick.

1. database: the real simulator writes that shape at `--scale` (1/1000: 50k messages a day) into
   a real database (SQLite file, or `--source-url`), then moves time on tick by tick (new
   traffic and the status changes due); at every tick the real `scan_updates` reads the changes
   and the real `dirty_hours` decides the hours, once without and once with the cadence (both
   states see the same scan). Rows rewritten = the rows of the hours it requests.
2. model: at full scale the hours would be dirty far more often (a 3-day-old hour of 2M rows has
   a few changes in every 5 minutes; at 1/1000 it has one now and then), so the database run's
   changes are turned into a rate per message, per tick and per age of the hour, and each hour
   of the full-scale day gets a Poisson number of changed rows at each tick; the same
   `dirty_hours` then decides the hours. Run at the database's scale too, as a cross-check of the
   model against the database.

    .venv/bin/python bench/write_amplification.py [--scale 0.001] [--hours 24] [--cadence 6:60 24:60]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from notif_export.dev.simulator import Simulator, TrafficMix, poisson  # noqa: E402
from notif_export.lib.contract import MESSAGES  # noqa: E402
from notif_export.lib.hours import hour_key, hour_start, parse_hour  # noqa: E402
from notif_export.lib.source import SourceDatabase  # noqa: E402
from notif_export.lib.sync import (  # noqa: E402
    ColdCadence,
    DataPointState,
    Scan,
    dirty_hours,
    scan_updates,
)

CLOCK = datetime(2026, 11, 1, tzinfo=timezone.utc)  # the first tick; history before it
PEAK_HOUR_UTC = 14


@dataclass
class Tally:
    """One sync configuration over the ticks."""

    dirty: list[int] = field(default_factory=list)          # hours requested per tick
    rewritten: list[float] = field(default_factory=list)    # rows rewritten per tick
    changed: list[float] = field(default_factory=list)      # rows changed per tick

    def row(self) -> dict[str, float]:
        rewritten, changed = sum(self.rewritten), sum(self.changed)
        return {"hours/tick": statistics.mean(self.dirty), "max hours": max(self.dirty),
                "changed/tick": changed / len(self.changed), "rewritten/tick": rewritten / len(self.rewritten),
                "max rewritten": max(self.rewritten), "per changed row": rewritten / changed if changed else 0.0}


class Sync:
    """The sync's decision for messages, without and with the cadence, fed the same scans."""

    def __init__(self, cadences: dict[str, ColdCadence | None], overlap: timedelta):
        self.cadences, self.overlap = cadences, overlap
        self.states: dict[str, DataPointState | None] = dict.fromkeys(cadences)
        self.tallies = {mode: Tally() for mode in cadences}

    def tick(self, scan: Scan, now: datetime, sizes: dict[str, float], changed: float) -> None:
        for mode, state in self.states.items():
            plan = dirty_hours(state, scan, {}, self.overlap, True, "2000-01-01-00:00", now,
                               cold=self.cadences[mode])
            self.states[mode] = plan.state
            if state is None:
                continue  # the first tick sets the sync up (going forward only)
            tally = self.tallies[mode]
            tally.dirty.append(len(plan.hours))
            tally.rewritten.append(sum(sizes.get(h, 0) for h in plan.hours))
            tally.changed.append(changed)
        assert len({s.position for s in self.states.values()}) == 1  # a cadence moves no position


def diurnal(at: datetime, amplitude: float) -> float:
    return 1 + amplitude * math.cos(2 * math.pi * (at.hour + at.minute / 60 - PEAK_HOUR_UTC) / 24)


def messages_per_request() -> float:
    """How many messages the simulator's requests cause, on average (its workflow mix)."""
    batch = Simulator(None, seed=99, mix=TrafficMix(requests_per_hour=3000)).traffic(CLOCK, CLOCK + timedelta(hours=1),
                                                                                      CLOCK + timedelta(hours=1))
    return len(batch.messages) / len(batch.requests)


class Traffic:
    """The simulator writing messages of the shape at the database's scale."""

    def __init__(self, db: SourceDatabase, args, per_request: float):
        self.db, self.args, self.per_request = db, args, per_request
        self.sim = Simulator(db, seed=args.seed)
        self.sizes: dict[str, float] = defaultdict(float)  # hour -> messages created in it

    def write(self, start: datetime, end: datetime, now: datetime) -> None:
        at = start
        while at < end:  # an hour's piece at a time, each at its own diurnal rate
            stop = min(end, hour_start(at) + timedelta(hours=1))
            per_hour = self.args.per_day / 24 * self.args.scale * diurnal(at, self.args.diurnal)
            self.sim.mix.requests_per_hour = per_hour / self.per_request
            batch = self.sim.traffic(at, stop, now)
            batch.requests.clear()
            batch.workflow_executions.clear()  # messages only: the data point whose statuses change for days
            self.sim.write(batch)
            for message in batch.messages:
                self.sizes[hour_key(message["created_at"])] += 1
            at = stop

    def advance(self, now: datetime) -> None:
        while self.sim.advance(now) == 20_000:
            pass


def database_run(args, db: SourceDatabase, cadences: dict[str, ColdCadence | None], overlap: timedelta,
                 interval: timedelta):
    """The real simulator, database, scan and dirty_hours; returns the tallies, the change rates
    per message per tick by the hour's age, and the hours' sizes."""
    traffic = Traffic(db, args, messages_per_request())
    started = time.perf_counter()
    traffic.write(CLOCK - timedelta(hours=args.history_hours), CLOCK, CLOCK)
    print(f"  history: {sum(traffic.sizes.values()):,.0f} messages in {args.history_hours} hours "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    sync = Sync(cadences, overlap)
    changes: dict[int, float] = defaultdict(float)   # age of the hour (hours) -> rows changed
    exposure: dict[int, float] = defaultdict(float)  # age -> messages of such hours, summed over ticks
    ticks_by_time: list[tuple[datetime, dict[str, int]]] = []
    now = CLOCK
    for tick in range(args.ticks + 1):
        if tick:
            traffic.write(now - interval, now, now)
            traffic.advance(now)
        position = sync.states["off"].position if sync.states["off"] else None
        scan = scan_updates(db, MESSAGES, sync.states["off"], overlap)
        moved = [c for c, u in scan.rows if u <= now and (position is None or u > datetime.fromisoformat(position))]
        per_hour: dict[str, int] = defaultdict(int)
        for created in moved:
            per_hour[hour_key(created)] += 1
        sync.tick(scan, now, traffic.sizes, len(moved))
        if position is not None:
            ticks_by_time.append((now, dict(per_hour)))
        now += interval
    # Rates per message of the hour's final size (new hours fill up while young: age 0 and 1
    # carry their inserts), by the hour's age at the tick.
    for at, per_hour in ticks_by_time:
        for hour, size in traffic.sizes.items():
            age = int((hour_start(at) - parse_hour(hour)) / timedelta(hours=1))
            if age >= 0:
                exposure[age] += size
                changes[age] += per_hour.get(hour, 0)
    return sync.tallies, rate_by_age(changes, exposure), dict(traffic.sizes)


def rate_by_age(changes: dict[int, float], exposure: dict[int, float]) -> dict[int, float]:
    """Changed rows per message per tick, by age: hour by hour for the first day, pooled over
    six hours after it (the tail is sparse at a small scale)."""
    def pool(age: int) -> range:
        return range(age, age + 1) if age < 24 else range(age - age % 6, age - age % 6 + 6)
    return {age: sum(changes.get(a, 0) for a in pool(age)) / max(1.0, sum(exposure.get(a, 0) for a in pool(age)))
            for age in exposure}


def model_run(args, scale_up: float, sizes: dict[str, float], rates: dict[int, float],
              cadences: dict[str, ColdCadence | None], overlap: timedelta, interval: timedelta) -> dict[str, Tally]:
    """Each hour's changed rows at each tick drawn from the rates, at `scale_up` times the
    database's volume; one row per changed hour goes into the scan (it alone makes the hour
    dirty), and the real dirty_hours decides."""
    rng = random.Random(args.seed)
    full = {hour: size * scale_up for hour, size in sizes.items()}
    sync = Sync(cadences, overlap)
    recent: list[tuple[datetime, datetime]] = []
    now = CLOCK
    for tick in range(args.ticks + 1):
        changed, rows, sizes_now = 0.0, [], {}
        for hour, size in full.items():
            start = parse_hour(hour)
            age = int((hour_start(now) - start) / timedelta(hours=1))
            if age < 0:
                continue
            sizes_now[hour] = size * min(1.0, (now - start) / timedelta(hours=1))  # the current hour fills up
            n = poisson(rng, size * rates.get(age, 0.0)) if tick else 0
            if n:
                changed += n
                rows.append((start + timedelta(minutes=30), now - timedelta(seconds=rng.uniform(0, 1))))
        keep = now - interval - overlap - timedelta(minutes=1)  # below every scan's floor
        recent = [r for r in recent if r[1] > keep] + rows
        position = sync.states["off"].position if sync.states["off"] else None
        scan_floor = datetime.fromisoformat(position) - overlap if position else None
        sync.tick(Scan(scan_floor, [r for r in recent if scan_floor is None or r[1] > scan_floor]), now, sizes_now,
                  changed)
        now += interval
    return sync.tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-day", type=float, default=50_000_000, help="messages a day at full scale")
    parser.add_argument("--diurnal", type=float, default=0.25, help="the peak hour's excess over the mean")
    parser.add_argument("--scale", type=float, default=0.001, help="the database's volume, as a share of full scale")
    parser.add_argument("--history-hours", type=int, default=7 * 24)
    parser.add_argument("--hours", type=float, default=24, help="hours of ticks measured")
    parser.add_argument("--interval", type=int, default=300, help="sync interval, seconds")
    parser.add_argument("--overlap", type=int, default=600, help="sync overlap, seconds")
    parser.add_argument("--cadence", nargs="+", default=["6:60", "24:60"],
                        help="NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS:NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES, one or more")
    parser.add_argument("--source-url", help="a SQLAlchemy URL of an empty database (default: a new SQLite file)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    interval, overlap = timedelta(seconds=args.interval), timedelta(seconds=args.overlap)
    args.ticks = int(args.hours * 3600 / args.interval)
    cadences: dict[str, ColdCadence | None] = {"off": None}
    for value in args.cadence:
        after, every = (int(v) for v in value.split(":"))
        cadences[f"cold after {after} h, every {every} min"] = ColdCadence(timedelta(hours=after),
                                                                           timedelta(minutes=every))
    peak, trough = (args.per_day / 24 * (1 + s * args.diurnal) for s in (1, -1))
    print(f"shape: {args.per_day:,.0f} messages a day, diurnal (peak hour {peak:,.0f} at {PEAK_HOUR_UTC}:00 UTC, "
          f"trough {trough:,.0f}), {args.history_hours} hours of history; {args.ticks} ticks every {args.interval} s "
          f"({args.hours:g} h), overlap {args.overlap} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="notif_export_amp_") as tmp:
        db = SourceDatabase(args.source_url or f"sqlite:///{tmp}/source.db")
        db.init_schema()
        started = time.perf_counter()
        database, rates, sizes = database_run(args, db, cadences, overlap, interval)
        print(f"  database run: {time.perf_counter() - started:.0f} s", flush=True)
        db.dispose()
    backend = db.url.get_backend_name()
    runs = [(f"database ({backend}), real simulator + scan_updates + dirty_hours", args.scale, database),
            ("model at the database's scale (cross-check)", args.scale,
             model_run(args, 1.0, sizes, rates, cadences, overlap, interval)),
            ("model at full scale, dirty_hours", 1.0,
             model_run(args, 1 / args.scale, sizes, rates, cadences, overlap, interval))]

    print(f"\nrows per tick, mean over {args.ticks} ticks; with a cadence a cold hour's change reaches the bucket "
          "at most its minutes + one interval later than without")
    print("| run | scale | cadence | dirty hours/tick (max) | rows changed/tick | rows rewritten/tick (max) "
          "| rows rewritten/s | rewritten per changed row |")
    print("|---|---|---|---|---|---|---|---|")
    for name, scale, tallies in runs:
        for mode in cadences:
            r = tallies[mode].row()
            print(f"| {name} | {scale:g} | {mode} | {r['hours/tick']:.1f} ({r['max hours']}) "
                  f"| {r['changed/tick']:,.0f} | {r['rewritten/tick']:,.0f} ({r['max rewritten']:,.0f}) "
                  f"| {r['rewritten/tick'] / args.interval:,.0f} | {r['per changed row']:,.1f} |")
    off = runs[-1][2]["off"].row()
    for mode in list(cadences)[1:]:
        on = runs[-1][2][mode].row()
        print(f"full scale, {mode}: rows rewritten divided by {off['rewritten/tick'] / on['rewritten/tick']:.1f} "
              f"({off['per changed row']:,.0f} -> {on['per changed row']:,.0f} rows rewritten per row changed)")


if __name__ == "__main__":
    main()
