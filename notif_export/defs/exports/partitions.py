"""Hourly partitions in UTC, keyed like '2025-01-15-14:00', from the first export hour on."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from notif_export.lib.settings import HOUR_FORMAT


def hourly_partitions(start: datetime) -> dg.HourlyPartitionsDefinition:
    # end_offset=1 makes the current, still-open hour a partition too: its file is rewritten as
    # its rows arrive instead of after the hour closes.
    return dg.HourlyPartitionsDefinition(start_date=start.strftime(HOUR_FORMAT), timezone="UTC", end_offset=1)


def partition_hour(partitions_def: dg.HourlyPartitionsDefinition, key: str) -> datetime:
    return partitions_def.time_window_for_partition_key(key).start


def partition_key(hour: datetime) -> str:
    return hour.strftime(HOUR_FORMAT)
