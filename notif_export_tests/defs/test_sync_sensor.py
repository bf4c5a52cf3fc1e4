"""The sync sensor through build_sensor_context, its runs executed for real against the local S3
server and the source (SQLite and PostgreSQL)."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import psycopg
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.destination import Destination
from notif_export.lib.hours import hour_key, hour_start
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import (
    NOW,
    export_env,
    file_rows,
    list_keys,
    read_object,
    source_rows,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


class Sync:
    """The sensor, ticking by hand, with the Definitions of a given set of settings."""

    def __init__(self, instance, env):
        self.instance, self.env, self.cursor = instance, env, None

    def tick(self, run: bool = True, **settings) -> list[dg.RunRequest]:
        defs = build_definitions({**self.env, **settings})
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=defs.resources,
                                     definitions=defs) as context:
            result = defs.resolve_sensor_def("sync")(context)
        self.cursor = result.cursor
        if run:
            job = defs.resolve_job_def("sync_dirty_hours")
            for request in result.run_requests or []:
                job.execute_in_process(run_config=request.run_config, instance=self.instance, tags=request.tags,
                                       raise_on_error=False)
        return result.run_requests or []


def hours_of(requests) -> dict[str, list[str]]:
    out = {}
    for r in requests:
        config = r.run_config["ops"]["rewrite_dirty_hours"]["config"]
        out[config["data_point"]] = config["hours"]
    return out


def touch(db, data_point: str, hours: list, when) -> None:
    """Update one row in each hour, stamped `when`."""
    table = TABLES[data_point]
    key = TABLES[data_point].c.idempotency_key
    with db.connect() as conn:
        for hour in hours:
            row = conn.execute(sa.select(key, table.c.created_at).where(
                table.c.created_at >= db._param(hour), table.c.created_at < db._param(hour + timedelta(hours=1))
            ).limit(1)).first()
            conn.execute(table.update().where(key == row[0], table.c.created_at == row[1])
                         .values(updated_at=when, tenant_id=f"changed-{when:%H%M%S}"))
        conn.commit()


@pytest.fixture
def env(source, source_url, bucket, aws_env):
    Simulator(source, seed=5, mix=TrafficMix(requests_per_hour=60)).history(60, NOW)
    return export_env(source_url, bucket, aws_env, NOTIF_EXPORT_START=hour_key(NOW - timedelta(days=5)))


def test_scattered_changes_rewrite_exactly_those_hours_in_one_run_per_data_point(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    assert sync.tick() == []                                     # first setup: going forward only
    assert list_keys(s3, bucket) == []

    base = (NOW - timedelta(hours=58)).replace(minute=0)
    scattered = [base + timedelta(hours=h) for h in range(0, 58) if h % 6 != 5][:48]
    touch(source, "messages", scattered, NOW + timedelta(minutes=1))
    touch(source, "requests", scattered[:3], NOW + timedelta(minutes=1))
    requests = sync.tick()

    assert len(requests) == 2
    assert hours_of(requests) == {"messages": [hour_key(h) for h in scattered],
                                  "requests": [hour_key(h) for h in scattered[:3]]}
    dest = Destination(bucket=bucket)
    assert list_keys(s3, bucket) == sorted(
        [dest.object_key("messages", h) for h in scattered] + [dest.object_key("requests", h) for h in scattered[:3]])
    for hour in scattered[:5]:
        assert file_rows(read_object(s3, bucket, dest.object_key("messages", hour)), "messages") == \
            source_rows(source, "messages", hour)
    # The partition view shows exactly these hours, each with its own metadata.
    assert instance.get_materialized_partitions(dg.AssetKey("messages")) == {hour_key(h) for h in scattered}
    event = instance.get_latest_materialization_event(dg.AssetKey("messages"))
    assert event.asset_materialization.metadata["rows"].value > 0
    assert sync.tick() == []                                     # nothing changed since


def test_pause_and_resume_exports_everything_changed_meanwhile(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    sync.tick()
    old = (NOW - timedelta(hours=30)).replace(minute=0)
    touch(source, "workflow_executions", [old], NOW + timedelta(minutes=1))       # while paused
    later = Simulator(source, seed=9).traffic(NOW, NOW + timedelta(minutes=30), NOW + timedelta(minutes=30))
    Simulator(source, seed=9).write(later)                                         # new traffic while paused
    requests = sync.tick()                                                          # resumed
    hours = hours_of(requests)
    assert hours["workflow_executions"] == [hour_key(old), hour_key(NOW)]
    assert set(hours) == {"requests", "workflow_executions", "messages"}
    dest = Destination(bucket=bucket)
    assert file_rows(read_object(s3, bucket, dest.object_key("workflow_executions", old)), "workflow_executions") == \
        source_rows(source, "workflow_executions", old)


def test_data_points_removed_added_and_re_enabled(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    sync.tick(NOTIF_EXPORT_DATA_POINTS="messages")
    h1, h2 = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (20, 10)]
    touch(source, "requests", [h1], NOW + timedelta(minutes=1))
    assert hours_of(sync.tick(NOTIF_EXPORT_DATA_POINTS="messages")) == {}          # requests not selected

    # Added: starts fresh, going forward only (h1's earlier change is not backfilled).
    assert hours_of(sync.tick()) == {}
    touch(source, "requests", [h2], NOW + timedelta(minutes=2))
    assert hours_of(sync.tick()) == {"requests": [hour_key(h2)]}

    # Removed: stops syncing, its files stay.
    touch(source, "messages", [h1], NOW + timedelta(minutes=3))
    assert hours_of(sync.tick(NOTIF_EXPORT_DATA_POINTS="requests,workflow_executions")) == {}
    assert Destination(bucket=bucket).object_key("requests", h2) in list_keys(s3, bucket)
    touch(source, "messages", [h2], NOW + timedelta(minutes=4))

    # Re-enabled: everything changed since it was disabled.
    assert hours_of(sync.tick()) == {"messages": [hour_key(h1), hour_key(h2)]}


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)  # a failed run, whatever the source
def test_failed_run_hours_are_requested_again(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    sync.tick()
    hour = (NOW - timedelta(hours=3)).replace(minute=0)
    touch(source, "messages", [hour], NOW + timedelta(minutes=1))
    failing = sync.tick(AWS_ENDPOINT_URL="http://127.0.0.1:1")                  # S3 unreachable: the run fails
    assert hours_of(failing) == {"messages": [hour_key(hour)]}
    assert list_keys(s3, bucket) == []
    retried = sync.tick()
    assert hours_of(retried) == {"messages": [hour_key(hour)]}
    assert file_rows(read_object(s3, bucket, Destination(bucket=bucket).object_key("messages", hour)), "messages") == \
        source_rows(source, "messages", hour)
    assert sync.tick() == []


def a_tick_with_its_run_queued(source, env, instance):
    """A tick that requested a messages run (its first hour changed), the run created in the
    instance and not launched; and a second hour to change meanwhile."""
    sync = Sync(instance, env)
    sync.tick()
    first, second = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (4, 2)]
    touch(source, "messages", [first], NOW + timedelta(minutes=1))
    [request] = sync.tick(run=False)
    job = build_definitions(env).resolve_job_def("sync_dirty_hours")
    run = instance.create_run_for_job(job_def=job, run_config=request.run_config, tags=request.tags,
                                      status=dg.DagsterRunStatus.NOT_STARTED)
    return sync, job, request, run, (first, second)


def run_events(instance, run, *events: dg.DagsterEventType) -> None:
    for event in events:
        instance.handle_run_event(run.run_id, dg.DagsterEvent(event_type_value=event.value, job_name=run.job_name))


def test_a_run_of_an_earlier_tick_holds_the_next_ticks_runs_until_it_ends(source, env, instance, s3, bucket):
    """One cut at a time: while a run of an earlier tick is queued or running, no file run is
    requested, for any data point (an older cut landing after a newer one would put an hour back,
    or leave the newer cut's children without their parents); the first tick after it ended finds
    every change made meanwhile."""
    sync, job, request, earlier, (first, second) = a_tick_with_its_run_queued(source, env, instance)
    touch(source, "messages", [second], NOW + timedelta(minutes=2))
    touch(source, "requests", [second], NOW + timedelta(minutes=2))
    assert sync.tick() == []                                                   # queued
    run_events(instance, earlier, dg.DagsterEventType.PIPELINE_START)
    assert instance.get_run_by_id(earlier.run_id).status == dg.DagsterRunStatus.STARTED
    assert sync.tick() == []                                                   # running
    instance.delete_run(earlier.run_id)
    job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
    assert hours_of(sync.tick()) == {"messages": [hour_key(second)], "requests": [hour_key(second)]}
    dest = Destination(bucket=bucket)
    for dp, hour in (("messages", first), ("messages", second), ("requests", second)):
        assert file_rows(read_object(s3, bucket, dest.object_key(dp, hour)), dp) == source_rows(source, dp, hour)


def test_a_failed_run_that_run_retries_will_re_execute_holds_the_next_tick(source, env, instance, s3, bucket):
    """The instance's run_retries re-execute a failed run with its own cut: until the retry is
    there and ends, the hours wait for it (requested again at once, with a newer cut, they could be
    put back by the retry landing later); the retry's success settles them."""
    sync, job, request, failed, (first, second) = a_tick_with_its_run_queued(source, env, instance)
    run_events(instance, failed, dg.DagsterEventType.PIPELINE_START, dg.DagsterEventType.PIPELINE_FAILURE)
    instance.add_run_tags(failed.run_id, {"dagster/will_retry": "true"})  # what run_retries marks
    touch(source, "messages", [second], NOW + timedelta(minutes=2))
    assert sync.tick() == []                                                   # the retry is coming
    retry = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
    instance.add_run_tags(failed.run_id, {"dagster/auto_retry_run_id": retry.run_id})
    assert hours_of(sync.tick()) == {"messages": [hour_key(second)]}          # the retry wrote the first
    dest = Destination(bucket=bucket)
    for hour in (first, second):
        assert file_rows(read_object(s3, bucket, dest.object_key("messages", hour)), "messages") == \
            source_rows(source, "messages", hour)


def test_late_commit_from_a_concurrent_writer_on_postgresql(pg_url, bucket, aws_env, instance, s3):
    from notif_export.lib.source import SourceDatabase

    db = SourceDatabase(pg_url)
    db.init_schema()
    Simulator(db, seed=2).history(6, NOW)
    sync = Sync(instance, {**aws_env, "NOTIF_EXPORT_SOURCE_URL": pg_url, "NOTIF_EXPORT_BUCKET": bucket,
                           "NOTIF_EXPORT_START": hour_key(NOW - timedelta(days=1))})
    sync.tick()
    late_hour, other_hour = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (5, 2)]

    # A long transaction stamps its change at t1 but has not committed yet...
    slow = psycopg.connect(pg_url.replace("+psycopg", ""))
    row = slow.execute("SELECT message_id FROM messages WHERE created_at >= %s AND created_at < %s AND message_id IS NOT NULL LIMIT 1",
                       (late_hour, late_hour + timedelta(hours=1))).fetchone()
    slow.execute("UPDATE messages SET message_status = 'clicked', updated_at = %s WHERE message_id = %s",
                 (NOW + timedelta(minutes=1), row[0]))
    # ...while another writer commits a later change, and the sync ticks past both stamps.
    touch(db, "messages", [other_hour], NOW + timedelta(minutes=2))
    assert hours_of(sync.tick()) == {"messages": [hour_key(other_hour)]}
    slow.commit()
    slow.close()

    assert hours_of(sync.tick()) == {"messages": [hour_key(late_hour)]}
    rows = file_rows(read_object(s3, bucket, Destination(bucket=bucket).object_key("messages", late_hour)), "messages")
    assert [r["message_status"] for r in rows if r["message_id"] == row[0]] == ["clicked"]
    db.dispose()


def test_cold_hours_wait_in_the_cursor_for_their_cadence(tmp_path, bucket, aws_env, instance, s3):
    """NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS: a changed hour older than that waits for the cadence,
    a hot one does not; once the interval has passed the cold one is rewritten, though nothing
    changed since, and its file equals the source."""
    from notif_export.lib.source import SourceDatabase

    url = f"sqlite:///{tmp_path / 'source.db'}"
    db = SourceDatabase(url)
    db.init_schema()
    # Everything before the tick's cut (NOTIF_EXPORT_SYNC_COMMIT_GRACE_SECONDS, 30 s, before it).
    started = datetime.now(timezone.utc) - timedelta(minutes=5)
    Simulator(db, seed=3, mix=TrafficMix(requests_per_hour=30)).history(12, started)
    sync = Sync(instance, {**aws_env, "NOTIF_EXPORT_SOURCE_URL": url, "NOTIF_EXPORT_BUCKET": bucket,
                           "NOTIF_EXPORT_START": hour_key(started - timedelta(days=1)),
                           "NOTIF_EXPORT_DATA_POINTS": "messages", "NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS": "4",
                           "NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES": "30"})
    assert sync.tick() == []
    cold_hour, hot_hour = [hour_start(started - timedelta(hours=h)) for h in (9, 1)]
    touch(db, "messages", [cold_hour, hot_hour], datetime.now(timezone.utc) - timedelta(minutes=2))
    assert hours_of(sync.tick()) == {"messages": [hour_key(hot_hour)]}
    dest = Destination(bucket=bucket)
    assert list_keys(s3, bucket) == [dest.object_key("messages", hot_hour)]
    assert sync.tick() == []                                       # 30 minutes have not passed
    assert list(json.loads(sync.cursor)["data_points"]["messages"]["deferred"]) == [hour_key(cold_hour)]

    # 30 minutes later (the cursor's last rewrite of cold hours moved back by as much):
    cursor = json.loads(sync.cursor)
    state = cursor["data_points"]["messages"]
    state["cold_rewritten_at"] = (datetime.fromisoformat(state["cold_rewritten_at"]) - timedelta(minutes=30)).isoformat()
    sync.cursor = json.dumps(cursor)
    requests = sync.tick()
    assert hours_of(requests) == {"messages": [hour_key(cold_hour)]}
    assert file_rows(read_object(s3, bucket, dest.object_key("messages", cold_hour)), "messages") == \
        source_rows(db, "messages", cold_hour)
    assert sync.tick() == []
    db.dispose()
