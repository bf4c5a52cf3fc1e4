"""The sync's rules as pure functions, on a controllable clock."""

from datetime import datetime, timedelta, timezone

from notif_export.lib.sync import DataPointState, Scan, SyncState, dirty_hours

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


def test_rows_updated_after_the_cutoff_wait_for_the_next_tick():
    rows = [(at(-60), at(-5))]
    state = tick(None, rows).state
    rows += [(at(-120), at(3)), (at(-180), at(9))]   # the second one is committed after the tick's cutoff
    plan = tick(state, rows, now=at(6))
    assert plan.hours == ["2026-11-20-10:00"] and plan.state.position == at(3).isoformat()
    assert tick(plan.state, rows, now=at(10)).hours == ["2026-11-20-09:00"]


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
