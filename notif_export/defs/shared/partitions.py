"""Hourly partitions in UTC, keyed like '2025-01-15-14:00', from the first export hour on."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from notif_export.lib.hours import HOUR_KEY_FORMAT


def hourly_partitions(start: datetime) -> dg.HourlyPartitionsDefinition:
    # end_offset=1 makes the current, still-open hour a partition too: its file is rewritten as
    # its rows arrive instead of after the hour closes.
    return dg.HourlyPartitionsDefinition(start_date=start.strftime(HOUR_KEY_FORMAT), timezone="UTC", end_offset=1)
