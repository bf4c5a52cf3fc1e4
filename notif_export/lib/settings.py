"""Every setting of notif_export: its environment variable, default and validation, in one place.

`Settings.from_env` reads a mapping (normally `os.environ`) once, applies the defaults and
reports every bad value together, each naming its variable and what it accepts. The Dagster
resources validate their fields with the same functions, so a run configured by hand in the
launchpad is refused the same way, before anything is written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from notif_export.lib.contract import DATA_POINTS

LAYOUTS = ("shared", "per_type")
COMPRESSIONS = ("snappy", "lz4", "gzip", "zstd", "brotli", "none")
HOUR_FORMAT = "%Y-%m-%d-%H:00"  # Dagster's hourly partition key format

DEFAULT_BUCKET = "notif-export"
DEFAULT_REGION = "us-east-1"
DEFAULT_SYNC_INTERVAL_SECONDS = 300
DEFAULT_SYNC_OVERLAP_SECONDS = 600
DEFAULT_HISTORY_DAYS = 7


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each and what it accepts."""


def validate_layout(value: str) -> str:
    if value not in LAYOUTS:
        raise SettingsError(f"NOTIF_EXPORT_LAYOUT={value!r} is not a layout; use one of: {', '.join(LAYOUTS)}")
    return value


def validate_compression(value: str) -> str:
    value = value.lower()
    if value not in COMPRESSIONS:
        raise SettingsError(
            f"NOTIF_EXPORT_COMPRESSION={value!r} is not supported; use one of: {', '.join(COMPRESSIONS)}"
        )
    return value


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def validate_bucket(value: str) -> str:
    problem = None
    if not _BUCKET_RE.match(value):
        problem = "3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    elif ".." in value or ".-" in value or "-." in value:
        problem = "no two adjacent dots, and no dot next to a hyphen"
    else:
        try:
            ipaddress.ip_address(value)
            problem = "not formatted as an IP address"
        except ValueError:
            pass
    if problem:
        raise SettingsError(f"NOTIF_EXPORT_BUCKET={value!r} is not a valid S3 bucket name: it must be {problem}")
    return value


def validate_prefix(value: str) -> str:
    value = value.strip()
    if value.startswith("/") or "//" in value:
        raise SettingsError(
            f"NOTIF_EXPORT_PREFIX={value!r}: a key prefix must not start with '/' or contain '//' "
            "(e.g. 'suprsend/exports/')"
        )
    return value if not value or value.endswith("/") else value + "/"


def validate_data_points(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in DATA_POINTS]
    if unknown or not names:
        raise SettingsError(
            f"NOTIF_EXPORT_DATA_POINTS={','.join(names)!r}: "
            + (f"unknown {', '.join(unknown)}; " if unknown else "no data point given; ")
            + f"use a comma-separated list of: {', '.join(DATA_POINTS)}"
        )
    return tuple(dict.fromkeys(names))


def parse_hour(value: str, setting: str = "NOTIF_EXPORT_START") -> datetime:
    """An hour as Dagster's key ('2025-01-15-14:00'), an ISO date or an ISO datetime, in UTC."""
    for parse in (
        lambda v: datetime.strptime(v, HOUR_FORMAT),
        lambda v: datetime.fromisoformat(v),
    ):
        try:
            parsed = parse(value)
            break
        except ValueError:
            continue
    else:
        raise SettingsError(
            f"{setting}={value!r} is not an hour; use '2025-01-15-14:00', '2025-01-15' or an ISO datetime"
        )
    parsed = parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    return parsed.replace(minute=0, second=0, microsecond=0)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be a whole number of seconds, at least 1")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    source_url: str
    bucket: str = DEFAULT_BUCKET
    prefix: str = ""
    layout: str = "shared"
    compression: str = "snappy"
    data_points: tuple[str, ...] = tuple(DATA_POINTS)
    start: datetime = field(default_factory=lambda: default_start(datetime.now(timezone.utc)))
    sync_interval_seconds: int = DEFAULT_SYNC_INTERVAL_SECONDS
    sync_overlap_seconds: int = DEFAULT_SYNC_OVERLAP_SECONDS
    endpoint_url: str | None = None
    region: str = DEFAULT_REGION

    @classmethod
    def from_env(cls, env: Mapping[str, str], now: datetime | None = None) -> Settings:
        home = Path(env.get("NOTIF_EXPORT_HOME") or ".notif_export").resolve()
        problems: list[str] = []

        def checked(fn, *args):
            try:
                return fn(*args)
            except SettingsError as exc:
                problems.append(str(exc))
                return None

        values = dict(
            home=home,
            source_url=env.get("NOTIF_EXPORT_SOURCE_URL") or f"sqlite:///{home / 'source.db'}",
            bucket=checked(validate_bucket, env.get("NOTIF_EXPORT_BUCKET") or DEFAULT_BUCKET),
            prefix=checked(validate_prefix, env.get("NOTIF_EXPORT_PREFIX", "")),
            layout=checked(validate_layout, env.get("NOTIF_EXPORT_LAYOUT") or "shared"),
            compression=checked(validate_compression, env.get("NOTIF_EXPORT_COMPRESSION") or "snappy"),
            data_points=checked(validate_data_points, env.get("NOTIF_EXPORT_DATA_POINTS") or ",".join(DATA_POINTS)),
            start=checked(parse_hour, env["NOTIF_EXPORT_START"]) if env.get("NOTIF_EXPORT_START")
            else default_start(now or datetime.now(timezone.utc)),
            sync_interval_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS", DEFAULT_SYNC_INTERVAL_SECONDS
            ),
            sync_overlap_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_OVERLAP_SECONDS", DEFAULT_SYNC_OVERLAP_SECONDS
            ),
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        )
        if problems:
            raise SettingsError("invalid settings:\n- " + "\n- ".join(problems))
        return cls(**values)

    @property
    def start_key(self) -> str:
        return self.start.strftime(HOUR_FORMAT)


def default_start(now: datetime) -> datetime:
    """Without NOTIF_EXPORT_START the partitions begin at midnight UTC a week ago."""
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=DEFAULT_HISTORY_DAYS)
