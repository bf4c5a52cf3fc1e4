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
from urllib.parse import urlparse

from notif_export.lib.contract import DATA_POINTS

LAYOUTS = ("shared", "per_type")
DBT_TARGETS = ("duckdb", "bigquery", "athena")
SSE_MODES = {"AES256": "AES256", "SSE-S3": "AES256", "aws:kms": "aws:kms", "SSE-KMS": "aws:kms"}
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
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


def validate_dbt_target(value: str) -> str:
    if value not in DBT_TARGETS:
        raise SettingsError(
            f"NOTIF_EXPORT_DBT_TARGET={value!r} is not a dbt target of dbt_project/profiles.yml; "
            f"use one of: {', '.join(DBT_TARGETS)}"
        )
    return value


def validate_sse(value: str) -> str:
    mode = SSE_MODES.get(value) or SSE_MODES.get(value.upper())
    if not mode:
        raise SettingsError(
            f"NOTIF_EXPORT_SSE={value!r} is not an encryption mode; use AES256 (SSE-S3, the default) "
            "or aws:kms (SSE-KMS, with NOTIF_EXPORT_KMS_KEY_ID)"
        )
    return mode


def validate_storage_class(value: str) -> str:
    if value.upper() not in STORAGE_CLASSES:
        raise SettingsError(
            f"NOTIF_EXPORT_STORAGE_CLASS={value!r} is not supported; use one of: {', '.join(STORAGE_CLASSES)}"
        )
    return value.upper()


def validate_region(value: str, endpoint_url: str | None = None) -> str:
    # A compatible server (SeaweedFS, MinIO) names its regions freely; AWS's are known.
    known = re.fullmatch(r"[a-z0-9-]{1,50}", value) if endpoint_url else value in _known_regions()
    if not known:
        raise SettingsError(
            f"AWS_REGION={value!r} is not an AWS region; use the bucket's region, e.g. us-east-1 or eu-west-1"
        )
    return value


def _known_regions() -> set[str]:
    import boto3

    session = boto3.Session()
    return {r for partition in session.get_available_partitions()
            for r in session.get_available_regions("s3", partition)}


_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


def validate_role(role_arn: str | None, external_id: str | None) -> str | None:
    """The role to assume, which must come with its External ID (whose value is never shown)."""
    if not role_arn:
        return None
    if not _ROLE_ARN_RE.match(role_arn):
        raise SettingsError(
            f"NOTIF_EXPORT_ROLE_ARN={role_arn!r} is not an IAM role ARN; "
            "use arn:aws:iam::<12-digit account>:role/<name>"
        )
    if not external_id:
        raise SettingsError(
            "NOTIF_EXPORT_ROLE_ARN is set without NOTIF_EXPORT_EXTERNAL_ID: set the External ID that "
            "the role's trust policy requires (sts:ExternalId)"
        )
    if not _EXTERNAL_ID_RE.match(external_id):
        raise SettingsError(
            "NOTIF_EXPORT_EXTERNAL_ID is not a valid External ID: 2-1224 letters, digits and +=,.@:/-"
        )
    return role_arn


def validate_endpoint(value: str | None, setting: str) -> str | None:
    """Plain HTTP only to this machine: credentials and data must not cross a network in clear."""
    if not value:
        return None
    from notif_export.lib.aws import is_loopback

    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(f"{setting}={value!r} is not a URL; use e.g. https://s3.example.com")
    if parsed.scheme == "http" and not is_loopback(value):
        raise SettingsError(
            f"{setting}={value!r}: HTTPS is required for an endpoint that is not on the loopback "
            "address; use https://"
        )
    return value


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
    dbt_target: str = "duckdb"
    sts_endpoint_url: str | None = None
    role_arn: str | None = None
    sse: str = "AES256"
    kms_key_id: str | None = None
    storage_class: str = "STANDARD"

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
            endpoint_url=checked(validate_endpoint, env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
                                 "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"),
            sts_endpoint_url=checked(validate_endpoint, env.get("AWS_ENDPOINT_URL_STS"), "AWS_ENDPOINT_URL_STS"),
            region=checked(validate_region, env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
                           env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")),
            role_arn=checked(validate_role, env.get("NOTIF_EXPORT_ROLE_ARN"), env.get("NOTIF_EXPORT_EXTERNAL_ID")),
            sse=checked(validate_sse, env.get("NOTIF_EXPORT_SSE") or "AES256"),
            kms_key_id=env.get("NOTIF_EXPORT_KMS_KEY_ID") or None,
            storage_class=checked(validate_storage_class, env.get("NOTIF_EXPORT_STORAGE_CLASS") or "STANDARD"),
            dbt_target=checked(validate_dbt_target, env.get("NOTIF_EXPORT_DBT_TARGET") or "duckdb"),
        )
        if values["sse"] == "aws:kms" and not values["kms_key_id"]:
            problems.append("NOTIF_EXPORT_SSE=aws:kms needs NOTIF_EXPORT_KMS_KEY_ID: the KMS key's id, ARN or alias")
        if problems:
            raise SettingsError("invalid settings:\n- " + "\n- ".join(problems))
        return cls(**values)

    @property
    def duckdb_path(self) -> Path:
        """The analytics database that dbt-duckdb builds."""
        return self.home / "analytics.duckdb"

    @property
    def start_key(self) -> str:
        return self.start.strftime(HOUR_FORMAT)


def default_start(now: datetime) -> datetime:
    """Without NOTIF_EXPORT_START the partitions begin at midnight UTC a week ago."""
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=DEFAULT_HISTORY_DAYS)
