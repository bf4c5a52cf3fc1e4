"""The export assets through real Dagster runs, the real local S3 server and both databases."""

import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.defs.shared.resources import DestinationResource
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib import export_pool
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import HIVE_TYPES, httpfs_extension_file
from notif_export.lib.hours import hour_key
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import (
    NOW,
    export_env,
    file_rows,
    list_keys,
    materialize,
    read_object,
    sorted_rows,
    source_rows,
)

FIRST = (NOW - timedelta(hours=3)).replace(minute=0)
HOURS = [FIRST + timedelta(hours=i) for i in range(3)]


@pytest.fixture
def traffic(source):
    Simulator(source, seed=11).history(4, NOW)
    return source


def duckdb_rows(s3_server, glob: str) -> list[dict]:
    con = duckdb.connect()
    con.execute(f"LOAD '{httpfs_extension_file()}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(s3_server.duckdb_secret_sql())
    cur = con.execute(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {HIVE_TYPES})")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


@pytest.mark.parametrize("layout, compression", [("shared", "snappy"), ("per_type", "gzip")])
def test_hours_in_the_bucket_equal_the_source(traffic, source_url, bucket, aws_env, s3, s3_server, layout, compression):
    env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_LAYOUT=layout, NOTIF_EXPORT_COMPRESSION=compression,
                     NOTIF_EXPORT_PREFIX="suprsend/")
    result = materialize(env, HOURS)
    assert result.success

    dest = Destination(bucket=bucket, prefix="suprsend/", layout=layout, compression=compression)
    expected_keys = sorted(dest.object_key(dp, hour) for dp in DATA_POINTS for hour in HOURS)
    assert list_keys(s3, bucket) == expected_keys
    for dp in DATA_POINTS:
        for hour in HOURS:
            table = read_object(s3, bucket, dest.object_key(dp, hour))
            assert table.schema == DATA_POINTS[dp].schema
            assert file_rows(table, dp) == source_rows(traffic, dp, hour)

    # DuckDB over the whole data point, with the hive partition columns typed as the contract says.
    folder = "suprsend/messages/" if layout == "per_type" else "suprsend/"
    rows = duckdb_rows(s3_server, f"s3://{bucket}/{folder}year=*/month=*/day=*/hour=*/messages.parquet")
    expected = [r for hour in HOURS for r in source_rows(traffic, "messages", hour)]
    for row in rows:
        created = row["created_at"]
        assert (row.pop("year"), row.pop("month"), row.pop("day"), row.pop("hour")) == \
            (created.year, created.month, created.day, created.hour)
    assert sorted_rows(rows, "messages") == sorted_rows(expected, "messages")

    # Each hour's materialization carries its metadata.
    events = result.get_asset_materialization_events()
    assert len(events) == len(DATA_POINTS) * len(HOURS)
    for event in events:  # each hour's own figures, not the range's totals
        hour = datetime.strptime(event.partition, "%Y-%m-%d-%H:00").replace(tzinfo=timezone.utc)
        rows = source_rows(traffic, event.asset_key.to_user_string(), hour)
        assert event.materialization.metadata["rows"].value == len(rows)
        assert event.materialization.metadata["s3_uri"].value == dest.uri(dest.object_key(event.asset_key.path[-1], hour))


def test_single_hour_metadata(traffic, source_url, bucket, aws_env):
    result = materialize(export_env(source_url, bucket, aws_env), [HOURS[1]], selection=["messages"])
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    expected = source_rows(traffic, "messages", HOURS[1])
    assert meta["rows"].value == len(expected)
    assert meta["s3_uri"].value == f"s3://{bucket}/" + Destination(bucket=bucket).object_key("messages", HOURS[1])
    assert meta["max_updated_at"].value == max(r["updated_at"] for r in expected).isoformat()
    assert meta["bytes"].value > 0


def test_changed_old_hour_is_replaced_and_no_other_file_touched(traffic, source_url, bucket, aws_env, s3):
    env = export_env(source_url, bucket, aws_env)
    materialize(env, HOURS, selection=["messages"])
    dest = Destination(bucket=bucket)
    untouched = {h: s3.head_object(Bucket=bucket, Key=dest.object_key("messages", h)) for h in HOURS[1:]}

    old, table = HOURS[0], TABLES["messages"]
    changed_at = NOW + timedelta(days=1)
    with traffic.connect() as conn:
        conn.execute(
            table.update()
            .where(table.c.created_at >= traffic._param(old), table.c.created_at < traffic._param(old + timedelta(hours=1)),
                   table.c.message_status == "delivered")
            .values(message_status="seen", message_seen_at=changed_at, updated_at=changed_at)
        )
        conn.commit()
    materialize(env, [old], selection=["messages"])

    rows = file_rows(read_object(s3, bucket, dest.object_key("messages", old)), "messages")
    assert rows == source_rows(traffic, "messages", old)
    assert any(r["message_seen_at"] == changed_at for r in rows)
    for hour, head in untouched.items():
        now_head = s3.head_object(Bucket=bucket, Key=dest.object_key("messages", hour))
        assert (now_head["ETag"], now_head["LastModified"]) == (head["ETag"], head["LastModified"])


def test_bad_destination_config_stops_the_run_before_any_write(traffic, source_url, bucket, aws_env, s3):
    defs = build_definitions(export_env(source_url, bucket, aws_env))
    result = dg.materialize(
        [defs.get_assets_def("messages")],
        resources={**defs.resources,
                   "destination": DestinationResource.configure_at_launch(connection=defs.resources["destination"].connection)},
        run_config={"resources": {"destination": {"config": {"bucket": bucket, "layout": "flat"}}}},
        partition_key=hour_key(HOURS[0]),
        raise_on_error=False,
    )
    assert not result.success
    failure = str(result.all_events)
    assert "NOTIF_EXPORT_LAYOUT='flat' is not a layout; use one of: shared, per_type" in failure
    assert list_keys(s3, bucket) == []


def test_unreachable_database_is_named_without_its_password(tmp_path, bucket, aws_env, s3, monkeypatch):
    url = "postgresql+psycopg://exporter:hunter2-secret@127.0.0.1:1/logs"
    monkeypatch.setenv("NOTIF_EXPORT_SOURCE_URL", url)  # a URL with a password is passed by reference
    result = materialize(export_env(url, bucket, aws_env), [HOURS[0]], selection=["messages"], raise_on_error=False)
    assert not result.success
    events = str(result.all_events)
    assert "cannot connect to the source database postgresql+psycopg://exporter:***@127.0.0.1:1/logs" in events
    assert "NOTIF_EXPORT_SOURCE_URL" in events
    assert "hunter2-secret" not in events
    assert list_keys(s3, bucket) == []


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)  # a failed run, whatever the source
def test_unreachable_s3_fails_and_leaves_the_database_alone(traffic, source_url, bucket, aws_env):
    env = export_env(source_url, bucket, {**aws_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    result = materialize(env, [HOURS[0]], selection=["messages"], raise_on_error=False)
    assert not result.success
    events = str(result.all_events)
    assert "http://127.0.0.1:1" in events
    assert aws_env["AWS_SECRET_ACCESS_KEY"] not in events
    with traffic.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TABLES["messages"])).scalar() > 0


def test_a_run_of_several_data_points_exports_them_as_of_one_cutoff(source, source_url, bucket, aws_env, s3):
    """Rows created after the run began wait for the next run, in every data point alike: a
    child in the bucket always has its parent there."""
    now = datetime.now(timezone.utc)
    hour = now.replace(minute=0, second=0, microsecond=0)
    left = hour + timedelta(hours=1) - now
    if left < timedelta(seconds=90):
        # The run must begin while the hour still has rows to come: in its last seconds, the
        # rows "created after the cutoff" would be created before the run begins.
        time.sleep(left.total_seconds() + 1)
        now = datetime.now(timezone.utc)
        hour = now.replace(minute=0, second=0, microsecond=0)
    sim = Simulator(source, seed=13, mix=TrafficMix(requests_per_hour=20_000))
    late = now + timedelta(minutes=10)  # created "after the cutoff": still to come when the run starts
    sim.write(sim.traffic(max(hour, now - timedelta(minutes=5)), late, late))
    before = datetime.now(timezone.utc)
    assert materialize(export_env(source_url, bucket, aws_env), [hour]).success
    after = datetime.now(timezone.utc)
    dest = Destination(bucket=bucket)
    files = {dp: file_rows(read_object(s3, bucket, dest.object_key(dp, hour)), dp) for dp in DATA_POINTS}
    for dp, rows in files.items():
        expected = [r for r in source_rows(source, dp, hour) if r["created_at"] < before]
        assert [r for r in rows if r["created_at"] < before] == expected and expected, dp
        assert all(r["created_at"] < after for r in rows), dp
        assert len(source_rows(source, dp, hour)) > len(rows), dp  # the later rows are left out
    requests = {r["idempotency_key"] for r in files["requests"]}
    executions = {r["execution_id"] for r in files["workflow_executions"]}
    assert {r["idempotency_key"] for r in files["messages"]} <= requests
    assert {r["wf_execution_id"] for r in files["messages"] if r["wf_execution_id"]} <= executions


def test_hours_in_parallel_processes_write_what_the_serial_path_writes(traffic, source_url, bucket, aws_env, s3,
                                                                      monkeypatch):
    monkeypatch.setattr(export_pool, "MIN_ROWS_FOR_PROCESSES", 1)  # the test's few rows go to the processes
    files = {}
    for processes in ("1", "2"):
        for key in list_keys(s3, bucket):
            s3.delete_object(Bucket=bucket, Key=key)
        env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_EXPORT_PROCESSES=processes)
        result = materialize(env, HOURS, selection=["messages"])
        assert result.success
        dest = Destination(bucket=bucket)
        files[processes] = {hour: file_rows(read_object(s3, bucket, dest.object_key("messages", hour)), "messages")
                            for hour in HOURS}
        metadata = {event.partition: event.materialization.metadata["rows"].value
                    for event in result.get_asset_materialization_events()}
        assert metadata == {hour_key(hour): len(files[processes][hour]) for hour in HOURS}
    assert files["2"] == files["1"] == {hour: source_rows(traffic, "messages", hour) for hour in HOURS}
