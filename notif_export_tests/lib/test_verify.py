"""`verify` against the real local S3 server and both sources: every kind of drift injected by
hand is found, counted in the right column, and a rewrite of the drifted hours clears it."""

import io
from datetime import timedelta

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from notif_export.dev.simulator import Simulator
from notif_export.lib.contract import DATA_POINTS, MESSAGES
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.export import rewrite_hour
from notif_export.lib.settings import Settings
from notif_export.lib.source import TABLES
from notif_export.lib.verify import ColdTolerance, cold_tolerance, recent_window, render, verify
from notif_export_tests.conftest import NOW, read_object

HOURS = [(NOW - timedelta(hours=h)).replace(minute=0, second=0, microsecond=0) for h in (3, 2, 1)]
START, END = HOURS[0], HOURS[-1] + timedelta(hours=1)


@pytest.fixture
def exported(source, s3, bucket, s3_server):
    Simulator(source, seed=5).history(3, NOW)
    dest = Destination(bucket=bucket)
    for dp in DATA_POINTS.values():
        for hour in HOURS:
            rewrite_hour(source, s3, dest, dp, hour)
    return source, dest


@pytest.fixture
def con(s3_server):
    access = s3_server_access(s3_server)
    with duckdb.connect() as con:
        yield connect_to_bucket(con, access)


def s3_server_access(s3_server):
    from notif_export.lib.bucket_access import BucketAccess

    creds = s3_server.credentials()
    return BucketAccess(region_name="us-east-1", endpoint_url=s3_server.endpoint_url,
                        aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"])


def check(exported, s3, con, dp=MESSAGES):
    source, dest = exported
    return verify(source, s3, dest, dp, START, END, con)


def test_an_exported_bucket_has_no_drift(exported, s3, con):
    for dp in DATA_POINTS.values():
        result = check(exported, s3, con, dp)
        assert result.drift == [] and result.hours_checked == 3
        assert result.source_rows == result.file_rows > 0


def test_each_kind_of_drift_is_found_and_a_rewrite_clears_it(exported, s3, bucket, con):
    source, dest = exported
    table = TABLES["messages"]
    deleted_hour, stale_hour, empty_hour = HOURS
    # a file deleted by hand
    s3.delete_object(Bucket=bucket, Key=dest.object_key("messages", deleted_hour))
    # a row updated in the source without a sync, and a row deleted from the source (erasure)
    with source.connect() as conn:
        rows = conn.execute(sa.select(table.c.message_id, table.c.created_at).order_by(table.c.message_id)).all()
        in_hour = [r.message_id for r in rows if r.message_id
                   and source._param(stale_hour) <= r.created_at < source._param(stale_hour + timedelta(hours=1))]
        conn.execute(table.update().where(table.c.message_id == in_hour[0])
                     .values(message_status="clicked", updated_at=NOW + timedelta(minutes=1)))
        conn.execute(table.delete().where(table.c.message_id == in_hour[1]))
        conn.commit()
    # a file written for an hour that has no rows
    empty = empty_hour - timedelta(hours=5)
    s3.copy_object(Bucket=bucket, Key=dest.object_key("messages", empty),
                   CopySource={"Bucket": bucket, "Key": dest.object_key("messages", empty_hour)})
    # a column dropped from a file
    dropped = read_object(s3, bucket, dest.object_key("messages", empty_hour)).drop_columns(["note"])
    sink = io.BytesIO()
    pq.write_table(dropped, sink)
    s3.put_object(Bucket=bucket, Key=dest.object_key("messages", empty_hour), Body=sink.getvalue())

    result = verify(source, s3, dest, MESSAGES, empty, END, con)
    by_hour = {d.hour: d for d in result.drift}
    assert set(by_hour) == {deleted_hour, stale_hour, empty_hour, empty}
    assert by_hour[deleted_hour].file_rows is None and by_hour[deleted_hour].missing == by_hour[deleted_hour].source_rows > 0
    assert (by_hour[stale_hour].missing, by_hour[stale_hour].stale, by_hour[stale_hour].extra) == (0, 1, 1)
    assert by_hour[empty].empty_hour_file and by_hour[empty].extra > 0
    assert by_hour[empty_hour].schema == "missing note"
    totals = result.totals()
    assert (totals["files for empty hours"], totals["files with another schema"]) == (1, 1)

    for hour in result.drifted_hours:
        rewrite_hour(source, s3, dest, MESSAGES, hour)
    assert verify(source, s3, dest, MESSAGES, empty, END, con).drift == []


def test_a_stale_file_put_back_is_found(exported, s3, bucket, con):
    source, dest = exported
    key = dest.object_key("messages", HOURS[1])
    old = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = TABLES["messages"]
    with source.connect() as conn:
        conn.execute(table.update().where(table.c.created_at >= source._param(HOURS[1]),
                                          table.c.created_at < source._param(HOURS[2]))
                     .values(updated_at=NOW + timedelta(minutes=2)))
        conn.commit()
    rewrite_hour(source, s3, dest, MESSAGES, HOURS[1])
    s3.put_object(Bucket=bucket, Key=key, Body=old)  # an old version restored over the new one
    [drift] = check(exported, s3, con).drift
    assert drift.hour == HOURS[1] and drift.stale == drift.source_rows > 0 and drift.missing == drift.extra == 0


def test_rows_changed_after_the_settle_time_are_left_to_the_sync(exported, s3, con):
    source, dest = exported
    table = TABLES["messages"]
    with source.connect() as conn:
        conn.execute(table.update().where(table.c.created_at >= source._param(HOURS[2]))
                     .values(updated_at=NOW + timedelta(minutes=3)))
        conn.commit()
    assert [d.hour for d in check(exported, s3, con).drift] == [HOURS[2]]
    assert verify(source, s3, dest, MESSAGES, START, END, con, settled_before=NOW).drift == []


def test_cold_hours_within_the_cadences_bound_are_not_drift(exported, s3, con):
    """With the sync's cadence for cold hours, a cold hour's row changed within the bound is
    counted apart (it waits for the next rewrite of cold hours); older changes are drift."""
    source, dest = exported
    table = TABLES["messages"]
    within, beyond, hot = HOURS

    def change_one_row(hour, when):
        with source.connect() as conn:
            [key] = conn.execute(sa.select(table.c.message_id).where(
                table.c.created_at >= source._param(hour), table.c.created_at < source._param(hour + timedelta(hours=1)),
                table.c.message_id.is_not(None)).limit(1)).first()
            conn.execute(table.update().where(table.c.message_id == key).values(updated_at=when, note="changed"))
            conn.commit()

    change_one_row(within, NOW + timedelta(minutes=3))
    change_one_row(beyond, NOW - timedelta(minutes=1))
    change_one_row(hot, NOW + timedelta(minutes=3))
    cold = ColdTolerance(newest_cold_hour=beyond, settled_before=NOW)
    result = verify(source, s3, dest, MESSAGES, START, END, con, settled_before=NOW + timedelta(minutes=10), cold=cold)
    assert [(d.hour, d.stale) for d in result.drift] == [(beyond, 1), (hot, 1)]
    assert result.within_cold_bound == {within: 1}
    assert any("1 rows in 1 cold hours wait for the sync's next rewrite of cold hours" in line
               for line in render([result]))
    without = verify(source, s3, dest, MESSAGES, START, END, con, settled_before=NOW + timedelta(minutes=10))
    assert [d.hour for d in without.drift] == HOURS and without.within_cold_bound == {}


def test_the_cold_tolerance_is_the_sync_bound_plus_the_cadence():
    settings = Settings.from_env({"NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS": "6", "NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES": "60"})
    # interval 5 min + commit grace 30 s + overlap 10 min + (cadence 60 min + one more interval 5 min)
    assert cold_tolerance(settings, NOW) == ColdTolerance(newest_cold_hour=NOW.replace(hour=5, minute=0),
                                                          settled_before=NOW - timedelta(minutes=80, seconds=30))
    assert cold_tolerance(Settings.from_env({}), NOW) is None
    # A hot hour's rows: interval + grace + overlap.
    assert recent_window(Settings.from_env({}), NOW)[2] == NOW - timedelta(minutes=15, seconds=30)
