"""The analytics sensor: one dbt build after a sync tick's runs have all finished, through
build_sensor_context against an instance holding the real sync runs."""

from datetime import timedelta

import dagster as dg
import pytest

from notif_export.definitions import build_definitions
from notif_export.defs.sync.sensors import SYNC_TICK_RUNS_TAG, SYNC_TICK_TAG
from notif_export_tests.conftest import NOW
from notif_export_tests.defs.test_sync_sensor import Sync, env, instance, touch  # noqa: F401 (fixtures)


def analytics_tick(instance, env, cursor):
    defs = build_definitions(env)
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        result = defs.resolve_sensor_def("analytics_after_sync")(context)
    return result, defs


def test_one_build_after_all_runs_of_a_sync_tick(source, env, instance):
    sync = Sync(instance, env)
    sync.tick()
    hours = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (2, 7)]
    touch(source, "messages", hours, NOW + timedelta(minutes=1))
    touch(source, "requests", hours[:1], NOW + timedelta(minutes=1))

    requested = sync.tick(run=False)  # two runs requested, none launched yet
    assert len(requested) == 2
    tick = requested[0].tags[SYNC_TICK_TAG]
    assert all(r.tags[SYNC_TICK_TAG] == tick and r.tags[SYNC_TICK_RUNS_TAG] == "2" for r in requested)

    defs = build_definitions(env)
    job = defs.resolve_job_def("sync_dirty_hours")
    job.execute_in_process(run_config=requested[0].run_config, instance=instance, tags=requested[0].tags)
    result, _ = analytics_tick(instance, env, cursor=None)
    assert not result.run_requests  # the tick's second run has not run yet

    job.execute_in_process(run_config=requested[1].run_config, instance=instance, tags=requested[1].tags)
    result, defs = analytics_tick(instance, env, cursor=None)
    assert [r.run_key for r in result.run_requests] == [f"analytics-after-{tick}"]
    assert result.cursor == tick
    assert defs.resolve_sensor_def("analytics_after_sync").job_name == "build_analytics"

    again, _ = analytics_tick(instance, env, cursor=result.cursor)
    assert not again.run_requests and again.cursor is None  # nothing new: cursor unchanged


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)  # a failed run, whatever the source
def test_no_build_when_every_run_of_the_tick_failed(source, env, instance):
    defs = build_definitions(env)
    tags = {SYNC_TICK_TAG: "20261120T123000.000000", SYNC_TICK_RUNS_TAG: "1"}
    failed = defs.resolve_job_def("sync_dirty_hours").execute_in_process(
        run_config={"ops": {"rewrite_dirty_hours": {"config": {"data_point": "messages", "hours": ["not an hour"]}}}},
        instance=instance, tags=tags, raise_on_error=False)
    assert not failed.success
    result, _ = analytics_tick(instance, env, cursor=None)
    assert not result.run_requests and result.cursor == tags[SYNC_TICK_TAG]


def test_no_second_build_while_one_is_running(source, env, instance):
    defs = build_definitions(env)
    tags = {SYNC_TICK_TAG: "20261120T123000.000000", SYNC_TICK_RUNS_TAG: "1"}
    defs.resolve_job_def("sync_dirty_hours").execute_in_process(
        run_config={"ops": {"rewrite_dirty_hours": {"config": {"data_point": "messages", "hours": []}}}},
        instance=instance, tags=tags)
    running = instance.create_run_for_job(defs.resolve_job_def("build_analytics"), status=dg.DagsterRunStatus.STARTED)
    result, _ = analytics_tick(instance, env, cursor=None)
    assert not result.run_requests and result.cursor is None  # the finished tick waits for the next build
    instance.report_run_canceled(running)
    result, _ = analytics_tick(instance, env, cursor=None)
    assert [r.run_key for r in result.run_requests] == [f"analytics-after-{tags[SYNC_TICK_TAG]}"]
