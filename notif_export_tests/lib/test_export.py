"""rewrite_hour against the real local S3 server, from SQLite and PostgreSQL."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from notif_export.dev.simulator import Simulator
from notif_export.lib.contract import DATA_POINTS, MESSAGES
from notif_export.lib.destination import Destination
from notif_export.lib.export import rewrite_hour
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import (
    NOW,
    file_rows,
    list_keys,
    read_object,
    source_rows,
)

HOUR = (NOW - timedelta(hours=2)).replace(minute=0)


@pytest.fixture
def traffic(source):
    Simulator(source, seed=7).history(4, NOW)
    return source


@pytest.mark.parametrize("data_point", list(DATA_POINTS))
def test_hour_file_equals_source(traffic, s3, bucket, data_point):
    dest = Destination(bucket=bucket)
    result = rewrite_hour(traffic, s3, dest, DATA_POINTS[data_point], HOUR)

    expected = source_rows(traffic, data_point, HOUR)
    table = read_object(s3, bucket, dest.object_key(data_point, HOUR))
    assert table.schema == DATA_POINTS[data_point].schema
    assert file_rows(table, data_point) == expected
    assert result.rows == len(expected) > 0
    assert result.max_updated_at == max(r["updated_at"] for r in expected)
    assert result.uri == f"s3://{bucket}/year={HOUR:%Y}/month={HOUR:%m}/day={HOUR:%d}/hour={HOUR:%H}/{data_point}.parquet"


def test_parquet_physical_types_follow_the_contract(traffic, s3, bucket):
    dest = Destination(bucket=bucket, compression="zstd")
    rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    body = s3.get_object(Bucket=bucket, Key=dest.object_key("messages", HOUR))["Body"].read()
    parquet = pq.ParquetFile(pa.BufferReader(body))
    created = parquet.schema.column(parquet.schema.names.index("created_at"))
    assert created.physical_type == "INT64"
    logical = json.loads(created.logical_type.to_json())
    assert (logical["Type"], logical["isAdjustedToUTC"], logical["timeUnit"]) == ("Timestamp", True, "microseconds")
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"


def test_row_groups_carry_the_min_and_max_of_the_time_columns(traffic, s3, bucket):
    dest = Destination(bucket=bucket)
    rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    body = s3.get_object(Bucket=bucket, Key=dest.object_key("messages", HOUR))["Body"].read()
    parquet = pq.ParquetFile(pa.BufferReader(body))
    group = parquet.metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    created = parquet.read_row_group(0, columns=["created_at"]).column(0)
    stats = columns["created_at"].statistics
    assert (stats.min, stats.max) == (pc.min(created).as_py(), pc.max(created).as_py())
    with_stats = {name for name, column in columns.items() if column.is_stats_set}
    assert with_stats == {f.name for f in MESSAGES.schema if pa.types.is_timestamp(f.type)}


def test_empty_hour_writes_no_file_and_removes_an_old_one(traffic, s3, bucket):
    dest = Destination(bucket=bucket)
    rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    table = TABLES["messages"]
    with traffic.connect() as conn:
        conn.execute(table.delete().where(table.c.created_at >= traffic._param(HOUR),
                                          table.c.created_at < traffic._param(HOUR + timedelta(hours=1))))
        conn.commit()
    result = rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    assert result.rows == 0 and not result.written
    assert list_keys(s3, bucket) == []


def test_an_hour_of_one_part_is_not_counted(traffic, s3, bucket, monkeypatch):
    """A file of one part is put once the hour has been read, with the stream's own figures: the
    count that a multipart upload's metadata needs is not run."""
    counted = []
    monkeypatch.setattr(traffic, "hour_stats", lambda *args: counted.append(args))
    dest = Destination(bucket=bucket)
    result = rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    assert counted == []
    head = s3.head_object(Bucket=bucket, Key=dest.object_key("messages", HOUR))
    assert head["Metadata"]["row-count"] == str(result.rows) == str(len(source_rows(traffic, "messages", HOUR)))
    assert head["Metadata"]["max-updated-at"] == result.max_updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_failure_mid_hour_keeps_the_previous_file(traffic, s3, bucket, monkeypatch):
    """A read that breaks after the first batch (a fault the real database cannot be made to
    produce on demand) aborts the upload: the old file stays whole."""
    dest = Destination(bucket=bucket)
    rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    key = dest.object_key("messages", HOUR)
    before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    real_read = type(traffic).read_range

    def broken(self, dp, start, end, **kwargs):
        yield next(real_read(self, dp, start, end, **kwargs))
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection reset by peer"))

    monkeypatch.setattr(type(traffic), "read_range", broken)
    with pytest.raises(sa.exc.OperationalError):
        rewrite_hour(traffic, s3, dest, MESSAGES, HOUR)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


EXPORT_IN_A_NEW_PROCESS = """
import sys
from datetime import datetime

import boto3

from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.export import rewrite_hour
from notif_export.lib.source import SourceDatabase

url, bucket, data_point, hour = sys.argv[1:]
before = "pandas" in sys.modules
result = rewrite_hour(SourceDatabase(url), boto3.client("s3"), Destination(bucket=bucket), DATA_POINTS[data_point],
                      datetime.fromisoformat(hour))
print(result.rows, before, "pandas" in sys.modules)
"""


@pytest.mark.parametrize("source_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("data_point", ["messages", "workflow_executions"])
def test_an_export_from_postgresql_never_imports_pandas(traffic, s3_server, bucket, data_point):
    """pyarrow imports pandas the first time it turns a timezone-aware timestamp into a datetime
    (or builds an array from a Python list): 0.3 s holding the GIL, which stalled the whole
    pipeline of a run's first hour (about a tenth of the benchmark hour). Rows that come from
    PostgreSQL as Arrow stay in Arrow's own types, so the import never comes. (`requests`, whose
    nested columns are built from JSON in Python, and SQLite sources still import it.)"""
    run = subprocess.run([sys.executable, "-c", EXPORT_IN_A_NEW_PROCESS, traffic.url.render_as_string(False),
                          bucket, data_point, HOUR.isoformat()], env={**os.environ, **s3_server.aws_env()},
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = run.stdout.split()
    assert int(out[0]) == len(source_rows(traffic, data_point, HOUR)) > 0
    assert out[1:] == ["False", "False"]


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_a_multipart_hour_carries_exact_metadata(source, s3, bucket, monkeypatch):
    """A file of several parts is created before the hour is read through, so its metadata comes
    from a count of the hour; if rows changed in between (injected: the count is made stale),
    the metadata is corrected once the file is complete."""
    from notif_export.dev.simulator import TrafficMix
    from notif_export.lib import s3_upload

    monkeypatch.setattr(s3_upload, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part: less data to simulate
    Simulator(source, seed=17, mix=TrafficMix(requests_per_hour=12000)).history(1, NOW.replace(minute=0))
    hour = (NOW - timedelta(hours=1)).replace(minute=0)
    real, counted, corrected = source.hour_stats, [], []

    def stale_count(dp, h, *cutoff):
        counted.append(h)
        rows, newest = real(dp, h, *cutoff)
        return rows - 5, newest

    monkeypatch.setattr(source, "hour_stats", stale_count)
    monkeypatch.setattr(s3, "copy_object", lambda real_copy=s3.copy_object, **kw: corrected.append(kw) or real_copy(**kw))
    dest = Destination(bucket=bucket, storage_class="STANDARD_IA")
    result = rewrite_hour(source, s3, dest, MESSAGES, hour, run_id="run-42")
    head = s3.head_object(Bucket=bucket, Key=dest.object_key("messages", hour))
    assert result.bytes > s3_upload.PART_SIZE and head["ETag"].strip('"').count("-") == 1  # a multipart upload
    assert (counted, len(corrected)) == ([hour], 1)  # counted at the first part, corrected once complete
    assert head["Metadata"]["row-count"] == str(result.rows) == str(len(source_rows(source, "messages", hour)))
    assert head["Metadata"]["max-updated-at"] == result.max_updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")
    assert file_rows(read_object(s3, bucket, dest.object_key("messages", hour)), "messages") == \
        source_rows(source, "messages", hour)
