"""Every kind of bad row, crafted in a real SQLite or PostgreSQL source (raw SQL where the model or
the database would refuse it), exported to the real local S3 server: the rule of bad_rows.py holds
for the bad row, the hour's good rows are all in the file, the counts are right, and verify finds
no drift but counts the bad rows."""

import json
from datetime import datetime, timedelta, timezone

import duckdb
import psycopg
import pytest
import sqlalchemy as sa

from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.export import rewrite_hour
from notif_export.lib.hours import hour_key
from notif_export.lib.source import TABLES
from notif_export.lib.sync import DataPointState, Scan, dirty_hours
from notif_export.lib.verify import verify
from notif_export_tests.conftest import (
    NOW,
    export_env,
    file_rows,
    materialize,
    read_object,
    sorted_rows,
    source_rows,
)
from notif_export_tests.lib.test_verify import s3_server_access

HOUR = (NOW - timedelta(hours=1)).replace(minute=0)


@pytest.fixture
def traffic(source):
    Simulator(source, seed=11, mix=TrafficMix(requests_per_hour=40)).history(2, NOW)
    return source


def insert_copy(db, data_point: str, sql: str | None = None, **changes) -> dict:
    """A copy of one of the hour's rows under a new key, with `changes`, then `sql` run on it
    (`:key` is its key); returns the row as inserted."""
    table = TABLES[data_point]
    row = {**source_rows(db, data_point, HOUR)[0], "node_id": "bad-node", "idempotency_key": "bad-key", **changes}
    row = {c: v for c, v in row.items() if c in table.c}
    with db.connect() as conn:
        conn.execute(table.insert().values(**row))
        if sql:
            conn.execute(sa.text(sql))
        conn.commit()
    return row


# kind -> (data point, craft(db) -> (the bad row as the file must hold it, or None: skipped;
#          rows of the hour it replaces), the hour's bad_rows)
def craft_invalid_json_string(db):
    return insert_copy(db, "requests", payload='{"not": json'), [], {}


def craft_invalid_utf8(db):
    if db.is_postgresql:
        pytest.skip("a UTF8 database refuses invalid UTF-8 (test_postgresql_refuses_invalid_utf8)")
    row = insert_copy(db, "messages", "UPDATE messages SET note = CAST(X'C328' AS TEXT), "
                      "channel_value = CAST(X'61FF' AS TEXT) WHERE node_id = 'bad-node'")
    return {**row, "note": "\ufffd(", "channel_value": "a\ufffd"}, [], {"invalid_utf8": 1}


def craft_invalid_nested_json(db):
    # Valid JSON of another shape (both databases); on SQLite also text that is not JSON.
    not_json = "; UPDATE requests SET errors = '{not json' WHERE idempotency_key = 'bad-key'" if db.is_sqlite else ""
    row = insert_copy(db, "requests", distinct_id_list={"not": "a list"})
    if not_json:
        with db.connect() as conn:
            conn.execute(sa.text(not_json.lstrip("; ")))
            conn.commit()
    nulled = {"distinct_id_list": None, **({"errors": None} if db.is_sqlite else {})}
    return {**row, **nulled}, [], {"invalid_nested_json": 1}


def craft_null_key(db):
    insert_copy(db, "messages", recipient_distinct_id=None)
    return None, [], {"null_key": 1}


def craft_duplicate_key(db):
    with db.connect() as conn:  # a source without the contract's unique index
        conn.execute(sa.text("DROP INDEX uq_messages_message_key"))
        conn.commit()
    original = source_rows(db, "messages", HOUR)[0]
    newer = {**original, "message_status": "clicked", "updated_at": original["updated_at"] + timedelta(seconds=1)}
    table = TABLES["messages"]
    with db.connect() as conn:
        conn.execute(table.insert().values(**newer))
        conn.commit()
    return newer, [original], {"duplicate_key": 1}


def craft_large_payload(db):
    return insert_copy(db, "requests", payload=json.dumps({"blob": "x" * (10 << 20)})), [], {}


def craft_created_at_outside_hours(db):
    far_future = datetime(9999, 12, 31, 23, 30, tzinfo=timezone.utc)
    pre_1970 = datetime(1900, 1, 1, tzinfo=timezone.utc)
    for created in (None, far_future, pre_1970):
        insert_copy(db, "messages", created_at=created, node_id=f"bad-{created}",
                    updated_at=NOW - timedelta(minutes=1))
    return None, [], {}


KINDS = {
    "invalid_json_string": ("requests", craft_invalid_json_string),
    "invalid_utf8": ("messages", craft_invalid_utf8),
    "invalid_nested_json": ("requests", craft_invalid_nested_json),
    "null_key": ("messages", craft_null_key),
    "duplicate_key": ("messages", craft_duplicate_key),
    "large_payload": ("requests", craft_large_payload),
    "created_at_outside_hours": ("messages", craft_created_at_outside_hours),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_row_rule(kind, traffic, s3, bucket, s3_server):
    data_point, craft = KINDS[kind]
    dp = DATA_POINTS[data_point]
    good = source_rows(traffic, data_point, HOUR)
    exported, replaced, counts = craft(traffic)
    dest = Destination(bucket=bucket)

    result = rewrite_hour(traffic, s3, dest, dp, HOUR)

    expected = [r for r in good if r not in replaced] + ([exported] if exported else [])
    assert file_rows(read_object(s3, bucket, dest.object_key(data_point, HOUR)), data_point) == \
        sorted_rows(expected, data_point)
    assert result.bad_rows == counts and result.rows == len(expected)
    with duckdb.connect() as con:
        found = verify(traffic, s3, dest, dp, HOUR, HOUR + timedelta(hours=1),
                       connect_to_bucket(con, s3_server_access(s3_server)))
    # verify reads key columns only: a nulled nested value is counted by the export alone.
    key_counts = {k: n for k, n in counts.items() if k != "invalid_nested_json"}
    assert found.drift == [] and found.bad_rows == ({HOUR: key_counts} if key_counts else {})
    outside = kind == "created_at_outside_hours"
    assert found.rows_without_hour == {"null_created_at": int(outside), "created_at_out_of_range": 2 * outside}
    assert found.totals()["bad rows"] == sum(key_counts.values())
    if outside:  # the sync neither fails on them nor asks for hours outside the partitions
        floor = NOW - timedelta(minutes=2)
        rows = traffic.updates_since(dp, floor)
        assert {c.year for c, _ in rows} == {1900, 2026, 9999}
        dirty = dirty_hours(DataPointState(position=floor.isoformat(), enabled_since=floor.isoformat()),
                            Scan(floor, rows), {}, timedelta(minutes=10), True, hour_key(NOW - timedelta(days=1)), NOW)
        assert dirty.hours and all(h <= hour_key(NOW) and h.startswith("2026") for h in dirty.hours)


def test_bad_rows_in_the_hour_metadata(traffic, source_url, bucket, aws_env):
    craft_null_key(traffic)
    result = materialize(export_env(source_url, bucket, aws_env), [HOUR - timedelta(hours=1), HOUR],
                         selection=["messages"])
    meta = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
    bad, clean = meta[hour_key(HOUR)], meta[hour_key(HOUR - timedelta(hours=1))]
    assert (bad["bad_rows"].value, bad["bad_rows_by_kind"].value) == (1, {"null_key": 1})
    assert (clean["bad_rows"].value, clean["bad_rows_by_kind"].value) == (0, {})
    assert bad["rows"].value == len(source_rows(traffic, "messages", HOUR)) - 1


def test_postgresql_refuses_invalid_utf8(pg_url):
    """Only SQLite can hold invalid UTF-8: a PostgreSQL UTF8 database refuses it on the way in."""
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
            conn.execute("SELECT convert_from('\\xc328'::bytea, 'UTF8')")
