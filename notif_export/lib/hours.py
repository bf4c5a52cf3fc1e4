"""Hours, the unit of the export: every file holds the rows created in one UTC hour.

An hour is named by its partition key, Dagster's hourly format ('2025-01-15-14:00'); this module
is the one place that formats, parses and bounds hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"  # Dagster's hourly partition key format
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class HourError(ValueError):
    """A value that is not an hour; the message says which forms are accepted."""


def hour_start(value: datetime) -> datetime:
    """The UTC hour a datetime falls in (naive datetimes are UTC)."""
    utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return utc.replace(minute=0, second=0, microsecond=0)


def hour_bounds(hour: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the hour `hour` falls in."""
    start = hour_start(hour)
    return start, start + timedelta(hours=1)


def epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch (naive datetimes are UTC)."""
    utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    return (utc - EPOCH) // timedelta(microseconds=1)


def hour_key(value: datetime) -> str:
    """The partition key of the hour a datetime falls in."""
    return hour_start(value).strftime(HOUR_KEY_FORMAT)


def parse_hour(value: str, setting: str = "hour") -> datetime:
    """An hour as a partition key ('2025-01-15-14:00'), an ISO date or an ISO datetime, in UTC.

    `setting` names where the value came from, for the error message.
    """
    for parse in (lambda v: datetime.strptime(v, HOUR_KEY_FORMAT), datetime.fromisoformat):
        try:
            return hour_start(parse(value))
        except ValueError:
            continue
    raise HourError(f"{setting}={value!r} is not an hour; use '2025-01-15-14:00', '2025-01-15' or an ISO datetime")


def hour_spans(hours: Iterable[datetime | str]) -> list[tuple[datetime, datetime]]:
    """The hours, sorted, as spans of consecutive hours: (first, last) of each."""
    starts = sorted({hour_start(h) if isinstance(h, datetime) else parse_hour(h) for h in hours})
    spans: list[list[datetime]] = []
    for hour in starts:
        if spans and hour - spans[-1][1] == timedelta(hours=1):
            spans[-1][1] = hour
        else:
            spans.append([hour, hour])
    return [(first, last) for first, last in spans]


def describe_hours(hours: Iterable[datetime | str]) -> str:
    """Hours for a log line, sorted and as ranges: '2026-11-24 13:00 → 2026-11-25 12:00, 24 hours'
    (several ranges are separated by commas; a range within one day names the date once)."""
    spans = hour_spans(hours)
    parts = []
    for first, last in spans:
        if first == last:
            parts.append(f"{first:%Y-%m-%d %H:00}")
        else:
            parts.append(f"{first:%Y-%m-%d %H:00} → {last:{'%H:00' if last.date() == first.date() else '%Y-%m-%d %H:00'}}")
    count = sum((last - first) // timedelta(hours=1) + 1 for first, last in spans)
    return ", ".join(parts + [f"{count} hour{'s' if count != 1 else ''}"])
