"""The reconciliation: the `reconcile` job's checks run for real against the local S3 server and
the source, repair injected drift (a row erased in the source, a file deleted by hand), record
empty hours as exported, and a failed check holds back the analytics build."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.defs.shared.runs import SYNC_TICK_RUNS_TAG, SYNC_TICK_TAG
from notif_export.lib.contract import MESSAGES
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.hours import hour_key
from notif_export.lib.settings import Settings
from notif_export.lib.source import TABLES
from notif_export.lib.verify import verify
from notif_export_tests.conftest import (
    NOW,
    file_rows,
    list_keys,
    read_object,
    source_rows,
)
from notif_export_tests.defs.test_analytics_sensor import analytics_tick
from notif_export_tests.defs.test_sync_sensor import env, instance  # noqa: F401 (fixtures)

HOURS = [(NOW - timedelta(hours=h)).replace(minute=0, second=0, microsecond=0) for h in (3, 2, 1)]


def export(env, instance, hours, data_points=("requests", "workflow_executions", "messages")):
    defs = build_definitions(env)
    tags = {"dagster/asset_partition_range_start": hour_key(hours[0]),
            "dagster/asset_partition_range_end": hour_key(hours[-1])}
    assert dg.materialize([defs.get_assets_def(name) for name in data_points], resources=defs.resources,
                          instance=instance, tags=tags).success


def reconcile(env, instance) -> dict[str, dg.AssetCheckEvaluation]:
    # The simulated clock (NOW) is fixed; the window reaches back from the real one to cover it.
    window = int((datetime.now(timezone.utc) - NOW) / timedelta(hours=1)) + 48
    defs = build_definitions({**env, "NOTIF_EXPORT_RECONCILE_WINDOW_HOURS": str(window)})
    result = defs.resolve_job_def("reconcile").execute_in_process(instance=instance)
    assert result.success
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("source_url", ["postgresql"], indirect=True)  # verify itself is tested on both
def test_reconciliation_repairs_drift_and_records_empty_hours(source, env, instance, s3, bucket, aws_env):
    export(env, instance, HOURS)
    dest = Destination(bucket=bucket)
    assert {e.passed for e in reconcile(env, instance).values()} == {True}

    # a person's right to erasure: rows deleted from the source; and a file deleted by hand
    table = TABLES["messages"]
    with source.connect() as conn:
        erased = conn.execute(sa.select(table.c.message_id).where(
            table.c.created_at >= source._param(HOURS[1]), table.c.created_at < source._param(HOURS[2]),
            table.c.message_id.is_not(None)).limit(3)).scalars().all()
        conn.execute(table.delete().where(table.c.message_id.in_(erased)))
        conn.commit()
    s3.delete_object(Bucket=bucket, Key=dest.object_key("requests", HOURS[0]))

    checks = reconcile(env, instance)
    messages, requests = checks["messages"], checks["requests"]
    assert messages.passed and requests.passed and checks["workflow_executions"].passed
    assert (messages.metadata["hours_drifted"].value, messages.metadata["rows_extra"].value) == (1, len(erased))
    assert (requests.metadata["hours_repaired"].value, requests.metadata["rows_missing"].value) == \
        (1, len(source_rows(source, "requests", HOURS[0])))
    rows = file_rows(read_object(s3, bucket, dest.object_key("messages", HOURS[1])), "messages")
    assert rows == source_rows(source, "messages", HOURS[1]) and not {r["message_id"] for r in rows} & set(erased)
    assert dest.object_key("requests", HOURS[0]) in list_keys(s3, bucket)
    settings = Settings.from_env(env)
    with duckdb.connect() as con:
        connect_to_bucket(con, settings.bucket_access)
        assert verify(source, s3, dest, MESSAGES, HOURS[0], HOURS[-1] + timedelta(hours=1), con).drift == []

    # the repaired hours are recorded as materializations; empty hours since the first export too
    materialized = instance.get_materialized_partitions(dg.AssetKey("messages"))
    later = [hour_key(NOW + timedelta(hours=h)) for h in (2, 30)]  # after the simulated traffic: no rows
    assert set(later) <= materialized
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("messages"), asset_partitions=[later[0]]), limit=1).records[0]
    assert record.asset_materialization.metadata["rows"].value == 0
    assert hour_key(HOURS[0] - timedelta(hours=6)) not in materialized  # before the first export: history


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)  # no database question here
def test_a_failed_reconciliation_holds_back_the_analytics_build(source, env, instance):
    defs = build_definitions(env)
    defs.resolve_job_def("sync_dirty_hours").execute_in_process(
        run_config={"ops": {"rewrite_dirty_hours": {"config": {"data_point": "messages", "hours": [hour_key(HOURS[0])]}}}},
        instance=instance, tags={SYNC_TICK_TAG: "20261120T123000.000000", SYNC_TICK_RUNS_TAG: "1"})

    def report(passed: bool) -> None:
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("messages"), check_name="bucket_matches_source", passed=passed))

    report(passed=False)
    result, _ = analytics_tick(instance, env, cursor=None)
    assert not result.run_requests
    assert "drift it could not repair in messages" in result.skip_reason.skip_message
    report(passed=True)
    result, _ = analytics_tick(instance, env, cursor=None)
    assert len(result.run_requests) == 1


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_the_schedule_runs_the_reconcile_job_at_the_configured_interval(env, instance):
    defs = build_definitions({**env, "NOTIF_EXPORT_RECONCILE_INTERVAL_MINUTES": "15"})
    schedule = defs.resolve_schedule_def("reconcile_schedule")
    assert (schedule.cron_schedule, schedule.job_name) == ("*/15 * * * *", "reconcile")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(instance=instance) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    checks = defs.resolve_job_def("reconcile").asset_layer.asset_graph.asset_check_keys
    assert {key.name for key in checks} == {"bucket_matches_source"}
    assert {key.asset_key.to_user_string() for key in checks} == {"requests", "workflow_executions", "messages"}
    assert request.job_name in (None, "reconcile")


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)  # verify's tolerance is tested on both
def test_a_cold_hour_within_the_cadences_bound_is_left_to_the_sync(source, env, instance, s3, bucket):
    """With NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS, a cold hour's change younger than the bound is
    reported apart and not rewritten; without it, the same change is drift and is repaired."""
    env = {**env, "NOTIF_EXPORT_DATA_POINTS": "messages"}
    export(env, instance, [HOURS[0], NOW.replace(minute=0)], data_points=("messages",))  # every hour with rows
    table = TABLES["messages"]
    with source.connect() as conn:
        changed = conn.execute(sa.select(table.c.message_id).where(
            table.c.created_at >= source._param(HOURS[0]), table.c.created_at < source._param(HOURS[1]),
            table.c.message_id.is_not(None)).limit(1)).scalar()
        conn.execute(table.update().where(table.c.message_id == changed).values(
            updated_at=datetime.now(timezone.utc) - timedelta(minutes=30), message_status="clicked"))
        conn.commit()

    cold = reconcile({**env, "NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS": "24"}, instance)["messages"]
    assert cold.passed and cold.metadata["hours_drifted"].value == 0
    assert cold.metadata["rows_within_cold_bound"].value == 1
    key = Destination(bucket=bucket).object_key("messages", HOURS[0])
    assert [r["message_status"] for r in file_rows(read_object(s3, bucket, key), "messages")
            if r["message_id"] == changed] != ["clicked"]                 # left to the sync's cadence

    hot = reconcile(env, instance)["messages"]
    assert hot.passed and hot.metadata["hours_repaired"].value == 1
    assert file_rows(read_object(s3, bucket, key), "messages") == source_rows(source, "messages", HOURS[0])
