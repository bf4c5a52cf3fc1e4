"""The sync's rules as pure functions, on a controllable clock."""

from datetime import datetime, timedelta, timezone

from notif_export.lib.hours import hour_key
from notif_export.lib.sync import (
    ColdCadence,
    DataPointState,
    Scan,
    SyncState,
    dirty_hours,
    overdue_runs,
    runs_in_flight,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
W = timedelta(minutes=10)
FIRST = "2026-11-01-00:00"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def scan_from(state: DataPointState | None, rows):
    """What scan_updates returns, computed from an in-memory table."""
    if state is None or state.enabled_since is None:
        newest = max((u for _, u in rows), default=None)
        floor = newest - W if newest else None
    else:
        floor = datetime.fromisoformat(state.position) - W if state.position else None
    return Scan(floor, [(c, u) for c, u in rows if floor is None or u > floor])


def tick(state, rows, outcomes=None, enabled=True, now=at(5)):
    return dirty_hours(state, scan_from(state, rows), outcomes or {}, W, enabled, FIRST, now)


def test_first_setup_is_going_forward_only():
    rows = [(at(-120), at(-100)), (at(-60), at(-5))]
    plan = tick(None, rows)
    assert plan.hours == []
    assert plan.state.position == at(-5).isoformat()


def test_rows_updated_since_the_position_make_their_hours_dirty():
    rows = [(at(-120), at(-100)), (at(-60), at(-5))]
    state = tick(None, rows).state
    rows += [(at(-120), at(1)), (at(-30 * 60), at(2))]  # an old hour changes, and one from yesterday
    plan = tick(state, rows)
    assert plan.hours == ["2026-11-19-06:00", "2026-11-20-10:00"]
    assert plan.state.position == at(2).isoformat()
    assert tick(plan.state, rows).hours == []  # nothing new: nothing to do


def test_late_commit_inside_the_overlap_is_caught_once():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    rows.append((at(-50), at(0)))
    state = tick(state, rows).state                      # position now at(0)
    rows.append((at(-180), at(-3)))                      # committed late, stamped before at(0)
    plan = tick(state, rows)
    assert plan.hours == ["2026-11-20-09:00"]
    assert plan.reasons["2026-11-20-09:00"] == "late commit inside the overlap window"
    assert tick(plan.state, rows).hours == []


def test_a_late_update_of_an_existing_row_is_caught():
    rows = [(at(-60), at(-2)), (at(-120), at(-1))]
    state = tick(None, rows).state
    rows[0] = (at(-60), at(-4))                           # same row, new state, earlier stamp
    assert tick(state, rows).hours == ["2026-11-20-11:00"]


def test_failed_runs_are_retried_and_succeeded_ones_forgotten():
    state = DataPointState(position=at(0).isoformat(), enabled_since=at(-100).isoformat(),
                           pending={"ok": ["2026-11-20-01:00"], "bad": ["2026-11-20-02:00"], "busy": ["2026-11-20-03:00"]})
    plan = tick(state, [], outcomes={"ok": "success", "bad": "failure", "busy": "pending"})
    assert plan.hours == ["2026-11-20-02:00"]
    assert set(plan.state.pending) == {"busy"}


def test_removed_then_re_enabled_backfills_what_changed_meanwhile():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    state = tick(state, rows, enabled=False, now=at(1)).state
    assert state.disabled_since == at(1).isoformat()
    rows.append((at(-300), at(30)))
    assert tick(state, rows, enabled=False, now=at(31)).hours == []
    plan = tick(state, rows, now=at(60))
    assert plan.hours == ["2026-11-20-07:00"]
    assert plan.state.disabled_since is None and plan.state.enabled_since == at(60).isoformat()


def test_added_later_starts_fresh():
    rows = [(at(-60), at(-5)), (at(-30), at(-1))]
    state = tick(None, rows, enabled=False).state        # listed but never enabled
    plan = tick(state, rows + [(at(-40), at(5))], now=at(6))
    assert plan.hours == [] and plan.state.position == at(5).isoformat()


def test_hours_before_the_first_partition_are_not_exported():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    rows.append((datetime(2026, 10, 1, tzinfo=timezone.utc), at(1)))
    assert tick(state, rows).hours == []


def test_state_round_trips_through_the_cursor():
    state = SyncState({"messages": DataPointState(position=at(0).isoformat(), window={"2026-11-20-11:00": [1, 2]},
                                                  pending={"k": ["2026-11-20-11:00"]}, enabled_since=at(-1).isoformat())})
    assert SyncState.from_json(state.to_json()) == state


def test_rows_updated_after_the_cutoff_wait_for_the_next_ticks_position():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    rows += [(at(-120), at(3)), (at(-180), at(9)), (at(7), at(8))]   # updated after the tick's cutoff: at(6)
    plan = tick(state, rows, now=at(6))
    # The row created before the cut is exported now, in its current state (its children created
    # before the cut are), and again once the position reaches it; the one created after waits.
    assert plan.hours == ["2026-11-20-09:00", "2026-11-20-10:00"] and plan.state.position == at(3).isoformat()
    assert tick(plan.state, rows, now=at(10)).hours == ["2026-11-20-09:00", "2026-11-20-12:00"]


def test_a_new_data_point_whose_window_is_all_after_the_cut_starts_at_the_cut():
    rows = [(at(-180), at(-15)), (at(-1), at(2))]   # its overlap window: from at(2) - 10 min, nothing before at(0)
    first = tick(None, rows, now=at(0))
    assert first.hours == [] and first.state.position == at(0).isoformat()
    assert tick(first.state, rows, now=at(5)).hours == ["2026-11-20-11:00"]   # only what came after


def test_a_run_that_never_appears_is_requested_again_after_the_timeout():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    state.await_run("gone", ["2026-11-20-08:00"], at(0))
    timeout = timedelta(minutes=15)
    waiting = dirty_hours(state, scan_from(state, rows), {"gone": "missing"}, W, True, FIRST, at(10), timeout)
    assert waiting.hours == [] and "gone" in waiting.state.pending
    retried = dirty_hours(state, scan_from(state, rows), {"gone": "missing"}, W, True, FIRST, at(16), timeout)
    assert retried.hours == ["2026-11-20-08:00"] and "never appeared" in retried.reasons["2026-11-20-08:00"]
    assert "gone" not in retried.state.pending


def test_runs_in_flight_are_the_queued_the_running_and_the_not_yet_seen():
    requested = {key: at(0).isoformat() for key in ("queued", "running", "slow", "gone", "ok", "bad")}
    outcomes = {"queued": "queued", "running": "pending", "slow": "missing", "gone": "missing", "ok": "success",
                "bad": "failure"}
    timeout = timedelta(minutes=15)
    assert runs_in_flight(requested, outcomes, at(10), timeout) == ["queued", "running", "slow", "gone"]
    assert runs_in_flight(requested, outcomes, at(16), timeout) == ["queued", "running"]  # missing too long: lost
    # Still in flight past the timeout: the tick warns (a queued run is failed by nothing).
    assert overdue_runs(requested, ["queued", "running"], at(16), timeout) == ["queued", "running"]
    assert overdue_runs(requested, ["queued", "running"], at(10), timeout) == []


# ---- the cadence of cold hours ------------------------------------------------------------------
COLD = ColdCadence(after=timedelta(hours=6), every=timedelta(minutes=60))


def cold_tick(state, rows, now, cold=COLD, outcomes=None):
    return dirty_hours(state, scan_from(state, rows), outcomes or {}, W, True, FIRST, now, cold=cold)


def test_which_hours_are_cold():
    # At 12:05 with 6 hours: the hours that ended by 06:05 are cold (05:00 and before).
    assert COLD.newest_cold_hour(at(5)) == datetime(2026, 11, 20, 5, tzinfo=timezone.utc)
    assert COLD.is_cold("2026-11-20-05:00", at(5)) and not COLD.is_cold("2026-11-20-06:00", at(5))
    assert COLD.extra_staleness(timedelta(minutes=5)) == timedelta(minutes=65)


def test_a_cold_hour_waits_for_the_cadence_and_is_rewritten_without_further_change():
    rows = [(at(-60), at(-5))]
    state = cold_tick(None, rows, at(0)).state            # the cadence counts from the first setup
    cold_hour, hot_hour = at(-10 * 60), at(-2 * 60)
    rows += [(cold_hour, at(1)), (hot_hour, at(2))]
    plan = cold_tick(state, rows, at(5))
    assert plan.hours == [hour_key(hot_hour)]             # the hot hour is unaffected
    assert plan.newly_deferred == [hour_key(cold_hour)] and list(plan.state.deferred) == [hour_key(cold_hour)]
    for minutes in range(10, 60, 5):                      # no change, the interval not over: nothing
        plan = cold_tick(plan.state, rows, at(minutes))
        assert plan.hours == [] and list(plan.state.deferred) == [hour_key(cold_hour)]
    plan = cold_tick(plan.state, rows, at(60))            # an hour after the last rewrite of cold hours
    assert plan.hours == [hour_key(cold_hour)]
    assert plan.reasons[hour_key(cold_hour)] == "cold hour (deferred): rows updated since the last sync"
    assert plan.state.deferred == {} and plan.state.cold_rewritten_at == at(60).isoformat()
    assert cold_tick(plan.state, rows, at(65)).hours == []


def test_cold_hours_are_rewritten_at_most_once_per_interval():
    rows = [(at(-60), at(-5))]
    state = cold_tick(None, rows, at(0)).state
    cold_hours = [at(-h * 60) for h in range(8, 80)]      # 72 cold hours, each changing at every tick
    rewrites: dict[str, list[datetime]] = {}
    for minutes in range(5, 4 * 60 + 1, 5):
        rows += [(hour, at(minutes - 1)) for hour in cold_hours]
        plan = cold_tick(state, rows, at(minutes))
        state = plan.state
        for hour in plan.hours:
            rewrites.setdefault(hour, []).append(at(minutes))
    assert set(rewrites) == {hour_key(h) for h in cold_hours}
    assert all(times == [at(60), at(120), at(180), at(240)] for times in rewrites.values())


def test_an_hour_turning_cold_is_deferred_and_retries_are_not():
    rows = [(at(-60), at(-25))]
    state = cold_tick(None, rows, at(-15)).state
    hour = datetime(2026, 11, 20, 5, 30, tzinfo=timezone.utc)     # hot until 12:00, cold from then
    rows.append((hour, at(-12)))
    assert cold_tick(state, rows, at(-10)).hours == [hour_key(hour)]
    state.await_run("failed", [hour_key(hour)], at(-10))
    rows.append((hour, at(1)))
    plan = cold_tick(state, rows, at(5), outcomes={"failed": "failure"})
    assert plan.hours == [hour_key(hour)] and plan.reasons[hour_key(hour)].startswith("retry")
    assert plan.state.deferred == {}                      # rewritten now: its latest state goes out
    rows.append((hour, at(6)))
    plan = cold_tick(plan.state, rows, at(10))
    assert plan.hours == [] and list(plan.state.deferred) == [hour_key(hour)]


def test_turning_the_cadence_off_rewrites_the_deferred_hours_at_once():
    rows = [(at(-60), at(-5))]
    state = cold_tick(None, rows, at(0)).state
    rows.append((at(-10 * 60), at(1)))
    state = cold_tick(state, rows, at(5)).state
    assert list(state.deferred) == ["2026-11-20-02:00"]
    plan = cold_tick(state, rows, at(10), cold=None)
    assert plan.hours == ["2026-11-20-02:00"] and plan.state.deferred == {}


def test_without_the_cadence_old_hours_are_rewritten_at_once_and_nothing_is_deferred():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows, now=at(0)).state
    assert state.cold_rewritten_at is None
    rows += [(at(-72 * 60), at(1)), (at(-2 * 60), at(2))]
    plan = tick(state, rows, now=at(5))
    assert plan.hours == ["2026-11-17-12:00", "2026-11-20-10:00"]
    assert plan.state.deferred == {} and plan.newly_deferred == []


def test_deferred_hours_survive_the_cursor_and_a_disabled_spell():
    rows = [(at(-60), at(-5))]
    state = cold_tick(None, rows, at(0)).state
    rows.append((at(-10 * 60), at(1)))
    state = cold_tick(state, rows, at(5)).state
    state = SyncState.from_json(SyncState({"messages": state}).to_json()).data_points["messages"]
    state = dirty_hours(state, scan_from(state, rows), {}, W, False, FIRST, at(10), cold=COLD).state  # removed
    assert list(state.deferred) == ["2026-11-20-02:00"]
    assert cold_tick(state, rows, at(61)).hours == ["2026-11-20-02:00"]                              # put back


def test_turned_on_for_a_data_point_already_syncing_the_cadence_starts_at_its_first_cold_rewrite():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows, now=at(0)).state             # synced without the cadence so far
    rows.append((at(-10 * 60), at(1)))
    plan = cold_tick(state, rows, at(5))
    assert plan.hours == ["2026-11-20-02:00"] and plan.newly_deferred == []
    rows.append((at(-10 * 60), at(6)))
    plan = cold_tick(plan.state, rows, at(10))
    assert plan.hours == [] and plan.newly_deferred == ["2026-11-20-02:00"]
