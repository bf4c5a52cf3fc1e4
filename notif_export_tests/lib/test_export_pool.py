"""Hours rewritten in worker processes: only when they hold rows enough to pay for starting the
processes, and a failure reaches the caller as the serial path's would."""

from datetime import timedelta

import pytest

from notif_export.dev.simulator import Simulator
from notif_export.lib import export_pool
from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.export_pool import ExportTarget, rewrite_hours_in_processes, worth_processes
from notif_export.lib.transient import is_transient
from notif_export_tests.conftest import NOW, list_keys, source_rows

HOURS = [(NOW - timedelta(hours=3)).replace(minute=0) + timedelta(hours=i) for i in range(3)]


def test_a_failed_hour_is_raised_with_its_hour_and_not_retried(source, source_url, s3_server, s3, bucket):
    Simulator(source, seed=5).history(4, NOW)
    access = BucketAccess(region_name="us-east-1", endpoint_url=s3_server.endpoint_url,
                          aws_access_key_id=s3_server.credentials()["access_key"],
                          aws_secret_access_key=s3_server.credentials()["secret_key"])
    missing = ExportTarget(source_url=source_url, access=access, destination=Destination(bucket=bucket + "-missing"))
    with pytest.raises(Exception) as failure:
        list(rewrite_hours_in_processes(missing, "messages", HOURS, 2, None, None))
    assert type(failure.value).__name__ == "HourExportFailed"
    assert "messages" in str(failure.value) and "NoSuchBucket" in str(failure.value)
    assert not is_transient(failure.value)  # a missing bucket fails the same way again
    assert list_keys(s3, bucket) == []


def test_processes_are_started_only_for_hours_holding_enough_rows(source, monkeypatch):
    Simulator(source, seed=6).history(4, NOW)
    messages = DATA_POINTS["messages"]
    scattered = [HOURS[0], HOURS[2]]
    rows = sum(len(source_rows(source, "messages", hour)) for hour in scattered)
    assert rows > 10
    assert source.rows_created_in(messages, scattered, None, at_most=10**9) == rows
    assert source.rows_created_in(messages, scattered, None, at_most=10) == 10  # the count stops there
    cutoff = HOURS[2] + timedelta(minutes=30)
    assert source.rows_created_in(messages, scattered, cutoff, at_most=10**9) == rows - sum(
        r["created_at"] >= cutoff for r in source_rows(source, "messages", HOURS[2]))

    assert not worth_processes(source, messages, scattered, None, processes=2)  # a few thousand rows
    monkeypatch.setattr(export_pool, "MIN_ROWS_FOR_PROCESSES", rows)
    assert worth_processes(source, messages, scattered, None, processes=2)
    assert not worth_processes(source, messages, scattered, None, processes=1)
    assert not worth_processes(source, messages, scattered[:1], None, processes=2)
