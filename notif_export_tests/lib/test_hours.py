from datetime import datetime, timezone

import pytest

from notif_export.lib.hours import HourError, describe_hours, hour_key, hour_spans, parse_hour


def test_hour_keys_round_trip():
    hour = datetime(2026, 11, 25, 7, tzinfo=timezone.utc)
    assert hour_key(hour.replace(minute=59)) == "2026-11-25-07:00"
    assert parse_hour("2026-11-25-07:00") == parse_hour("2026-11-25T07:42:00") == hour
    with pytest.raises(HourError, match="NOTIF_EXPORT_START='yesterday' is not an hour"):
        parse_hour("yesterday", "NOTIF_EXPORT_START")


def test_hours_are_described_sorted_and_as_ranges():
    day = [f"2026-11-24-{h:02d}:00" for h in range(13, 24)] + [f"2026-11-25-{h:02d}:00" for h in range(0, 13)]
    assert describe_hours(reversed(day)) == "2026-11-24 13:00 → 2026-11-25 12:00, 24 hours"
    scattered = ["2026-11-25-10:00", "2026-11-25-12:00", "2026-11-25-11:00", "2026-11-24-13:00"]
    assert describe_hours(scattered) == "2026-11-24 13:00, 2026-11-25 10:00 → 12:00, 4 hours"
    assert describe_hours([datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)]) == "2026-11-25 07:00, 1 hour"


def test_hours_are_spans_of_consecutive_hours():
    hour = datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    assert hour_spans(["2026-11-25-12:00", "2026-11-25-10:00", "2026-11-25-11:00", "2026-11-24-13:00"]) == [
        (datetime(2026, 11, 24, 13, tzinfo=timezone.utc),) * 2, (hour, hour.replace(hour=12))]
