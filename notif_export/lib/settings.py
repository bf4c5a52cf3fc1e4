"""Every setting of notif_export: its environment variable, default and validation, in one place.

`Settings.from_env` reads a mapping (normally `os.environ`) once, applies the defaults, reports
every bad value together (each naming its variable and what it accepts) and builds the runtime
values the rest of the program uses: the `Destination`, the `BucketAccess` and the dbt settings.
The CLI uses them directly; `notif_export.defs.shared.resources.build_resources` turns the same
values into Dagster resources. Nothing reads the environment anywhere else.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from notif_export.lib.bucket_access import SECRET_VARIABLES, BucketAccess, is_loopback
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import VARIABLES as DESTINATION_VARIABLES
from notif_export.lib.destination import Destination
from notif_export.lib.hours import HOUR_KEY_FORMAT, HourError, parse_hour
from notif_export.lib.json_objects import VARIABLES as JSON_VARIABLES
from notif_export.lib.json_objects import JsonDestination, KeyTemplateWarning
from notif_export.lib.sync import ColdCadence
from notif_export.lib.workers import usable_cpus

# The checkout this package runs from: the local state (`.notif_export/`), dbt_project/ and the
# Dagster workspace live there, so every command finds them whatever the current folder.
PROJECT_DIR = Path(__file__).resolve().parents[2]

DBT_TARGETS = ("duckdb", "bigquery", "athena")
BIGQUERY_METHODS = ("oauth", "service-account", "oauth-secrets")

DEFAULT_REGION = "us-east-1"
DEFAULT_SYNC_INTERVAL_SECONDS = 300
DEFAULT_SYNC_OVERLAP_SECONDS = 600
DEFAULT_SYNC_COMMIT_GRACE_SECONDS = 30
DEFAULT_HISTORY_DAYS = 7
DEFAULT_SYNC_RUN_TIMEOUT_SECONDS = 900
DEFAULT_SYNC_COLD_REWRITE_MINUTES = 60
DEFAULT_RECONCILE_INTERVAL_MINUTES = 60
DEFAULT_RECONCILE_WINDOW_HOURS = 7 * 24
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# The export step's first retry of a transient failure; then doubled (with jitter), 3 retries in all.
DEFAULT_RETRY_DELAY_SECONDS = 5


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each and what it accepts."""


@dataclass(frozen=True)
class DbtSettings:
    """The dbt project's target and the warehouse settings of its BigQuery and Athena targets;
    `analytics.dbt_env` hands every one of them to dbt, which has no defaults of its own."""

    target: str = "duckdb"
    source_schema: str = "notif_export_raw"
    bigquery_method: str = "oauth"
    bigquery_keyfile: str = ""
    bigquery_project: str = ""
    bigquery_dataset: str = "notif_export"
    bigquery_location: str = "US"
    athena_staging_dir: str = ""
    athena_catalog: str = "awsdatacatalog"
    athena_schema: str = "notif_export"
    athena_workgroup: str = "primary"
    # method oauth-secrets: a short-lived access token (`gcloud auth print-access-token`).
    bigquery_token: str = field(default="", repr=False)

    SECRETS = ("bigquery_token",)

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable of a field: NOTIF_EXPORT_DBT_TARGET, NOTIF_EXPORT_BIGQUERY_PROJECT..."""
        return "NOTIF_EXPORT_" + (name.upper() if name.startswith(("bigquery_", "athena_")) else f"DBT_{name.upper()}")

    def problems(self) -> list[str]:
        found = []
        if self.target not in DBT_TARGETS:
            found.append(f"NOTIF_EXPORT_DBT_TARGET={self.target!r} is not a dbt target of dbt_project/profiles.yml; "
                         f"use one of: {', '.join(DBT_TARGETS)}")
        if self.bigquery_method not in BIGQUERY_METHODS:
            found.append(f"NOTIF_EXPORT_BIGQUERY_METHOD={self.bigquery_method!r} is not supported; use one of: "
                         f"{', '.join(BIGQUERY_METHODS)}")
        if self.target == "bigquery" and not self.bigquery_project:
            found.append("NOTIF_EXPORT_DBT_TARGET=bigquery needs NOTIF_EXPORT_BIGQUERY_PROJECT: the Google Cloud "
                         "project that holds the dataset")
        if self.target == "bigquery" and self.bigquery_method == "service-account" and not self.bigquery_keyfile:
            found.append("NOTIF_EXPORT_BIGQUERY_METHOD=service-account needs NOTIF_EXPORT_BIGQUERY_KEYFILE: the "
                         "service account's JSON key file")
        if self.target == "athena" and not self.athena_staging_dir.startswith("s3://"):
            found.append(f"NOTIF_EXPORT_DBT_TARGET=athena needs NOTIF_EXPORT_ATHENA_STAGING_DIR, an s3:// folder "
                         f"for Athena's query results (got {self.athena_staging_dir!r})")
        return found


@dataclass(frozen=True)
class IntakeSettings:
    """The keys the intake service (`notif-export intake serve`) accepts: the workspace key and
    secret of the SDKs' signed requests, and the API key of `Authorization: Bearer`."""

    workspace_key: str = ""
    workspace_secret: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)

    VARIABLES = {"workspace_key": "NOTIF_EXPORT_INTAKE_WORKSPACE_KEY",
                 "workspace_secret": "NOTIF_EXPORT_INTAKE_WORKSPACE_SECRET",
                 "api_key": "NOTIF_EXPORT_INTAKE_API_KEY"}

    def problems(self) -> list[str]:
        found = []
        # The SDKs send the workspace key as an event's `env`, which their own schema wants 20+ long.
        if self.workspace_key and not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", self.workspace_key):
            found.append(f"NOTIF_EXPORT_INTAKE_WORKSPACE_KEY={self.workspace_key!r} must be 20 to 64 letters, "
                         "digits, _ or -")
        for name in ("workspace_secret", "api_key"):
            if getattr(self, name) and len(getattr(self, name)) < 16:
                found.append(f"{self.VARIABLES[name]} is too short: use at least 16 random characters")
        return found

    def require(self) -> None:
        """The service needs the workspace key and at least one of the secret and the API key."""
        if not self.workspace_key or not (self.workspace_secret or self.api_key):
            raise SettingsError(
                "the intake service needs NOTIF_EXPORT_INTAKE_WORKSPACE_KEY and NOTIF_EXPORT_INTAKE_WORKSPACE_SECRET "
                "(signed requests) and/or NOTIF_EXPORT_INTAKE_API_KEY (Bearer); generate them, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(24))'")


@dataclass(frozen=True)
class Settings:
    home: Path
    source_url: str
    destination: Destination = field(default_factory=Destination)
    json_destination: JsonDestination = field(default_factory=JsonDestination)  # one object per record version
    bucket_access: BucketAccess = field(default_factory=lambda: BucketAccess(region_name=DEFAULT_REGION))
    data_points: tuple[str, ...] = tuple(DATA_POINTS)
    start: datetime = field(default_factory=lambda: default_start(datetime.now(timezone.utc)))
    sync_interval_seconds: int = DEFAULT_SYNC_INTERVAL_SECONDS
    sync_overlap_seconds: int = DEFAULT_SYNC_OVERLAP_SECONDS
    # A tick's cut lags its evaluation by this: rows a writer stamped before the cut and commits
    # within it are visible to every run of the tick, whenever each starts reading.
    sync_commit_grace_seconds: int = DEFAULT_SYNC_COMMIT_GRACE_SECONDS
    sync_run_timeout_seconds: int = DEFAULT_SYNC_RUN_TIMEOUT_SECONDS
    retry_delay_seconds: int = DEFAULT_RETRY_DELAY_SECONDS
    sync_cold_after_hours: int | None = None    # None: no cadence, every dirty hour is rewritten at each tick
    sync_cold_rewrite_minutes: int = DEFAULT_SYNC_COLD_REWRITE_MINUTES
    reconcile_interval_minutes: int = DEFAULT_RECONCILE_INTERVAL_MINUTES
    reconcile_window_hours: int = DEFAULT_RECONCILE_WINDOW_HOURS
    dbt: DbtSettings = field(default_factory=DbtSettings)
    dagster_url: str = DEFAULT_DAGSTER_URL
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    # The intake service's processes (uvicorn's workers sharing one socket): one interpreter lock
    # holds one process near 1,000 triggers/s. SQLite takes one writer at a time: one process.
    intake_processes: int = 1
    # Hours a run exports at once, each in its own process (lib/export_pool.py).
    export_processes: int = field(default_factory=usable_cpus)

    @classmethod
    def from_env(cls, env: Mapping[str, str], now: datetime | None = None) -> Settings:
        home = Path(env.get("NOTIF_EXPORT_HOME") or PROJECT_DIR / ".notif_export").resolve()
        problems: list[str] = []

        def checked(fn: Callable[..., Any], *args: Any) -> Any:
            try:
                return fn(*args)
            except (SettingsError, HourError) as exc:
                problems.append(str(exc))
                return None

        endpoint_variable = "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
        endpoint_url = checked(validate_endpoint, env.get(endpoint_variable), endpoint_variable)
        access = dict(
            region_name=checked(validate_region, env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
                                or DEFAULT_REGION, endpoint_url),
            endpoint_url=endpoint_url,
            sts_endpoint_url=checked(validate_endpoint, env.get("AWS_ENDPOINT_URL_STS"), "AWS_ENDPOINT_URL_STS"),
            role_arn=checked(validate_role, env.get("NOTIF_EXPORT_ROLE_ARN"), env.get("NOTIF_EXPORT_EXTERNAL_ID")),
            **{name: env.get(variable) or None for name, variable in SECRET_VARIABLES.items()},
        )
        dbt = DbtSettings(**{f.name: env[DbtSettings.variable(f.name)] for f in fields(DbtSettings)
                             if env.get(DbtSettings.variable(f.name))})
        problems += dbt.problems()
        destination = _model(Destination, {name: env[variable] for name, variable in DESTINATION_VARIABLES.items()
                                           if env.get(variable)}, problems)
        json_values: dict[str, Any] = {name: env[variable] for name, variable in JSON_VARIABLES.items()
                                       if env.get(variable)}
        json_values.setdefault("bucket", destination.bucket if destination else Destination().bucket)
        json_values["data_points"] = [n.strip() for n in json_values.get("data_points", "").split(",") if n.strip()]
        json_destination = _model(JsonDestination, json_values, problems)
        intake = IntakeSettings(**{name: env.get(variable, "") for name, variable in IntakeSettings.VARIABLES.items()})
        problems += intake.problems()
        values = dict(
            home=home,
            source_url=env.get("NOTIF_EXPORT_SOURCE_URL") or f"sqlite:///{home / 'source.db'}",
            destination=destination,
            json_destination=json_destination,
            bucket_access=_model(BucketAccess, access, problems),
            data_points=checked(validate_data_points, env.get("NOTIF_EXPORT_DATA_POINTS") or ",".join(DATA_POINTS)),
            start=checked(parse_hour, env["NOTIF_EXPORT_START"], "NOTIF_EXPORT_START")
            if env.get("NOTIF_EXPORT_START") else default_start(now or datetime.now(timezone.utc)),
            sync_interval_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS", DEFAULT_SYNC_INTERVAL_SECONDS
            ),
            sync_overlap_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_OVERLAP_SECONDS", DEFAULT_SYNC_OVERLAP_SECONDS
            ),
            sync_commit_grace_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_COMMIT_GRACE_SECONDS", DEFAULT_SYNC_COMMIT_GRACE_SECONDS
            ),
            sync_run_timeout_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_SYNC_RUN_TIMEOUT_SECONDS", DEFAULT_SYNC_RUN_TIMEOUT_SECONDS
            ),
            retry_delay_seconds=checked(
                _positive_int, env, "NOTIF_EXPORT_RETRY_DELAY_SECONDS", DEFAULT_RETRY_DELAY_SECONDS
            ),
            reconcile_interval_minutes=checked(validate_reconcile_interval, checked(
                _positive_int, env, "NOTIF_EXPORT_RECONCILE_INTERVAL_MINUTES", DEFAULT_RECONCILE_INTERVAL_MINUTES,
                "minutes")),
            reconcile_window_hours=checked(
                _positive_int, env, "NOTIF_EXPORT_RECONCILE_WINDOW_HOURS", DEFAULT_RECONCILE_WINDOW_HOURS, "hours"
            ),
            dbt=dbt,
            dagster_url=checked(validate_endpoint, env.get("NOTIF_EXPORT_DAGSTER_URL") or DEFAULT_DAGSTER_URL,
                                "NOTIF_EXPORT_DAGSTER_URL"),
            intake=intake,
            export_processes=checked(_positive_int, env, "NOTIF_EXPORT_EXPORT_PROCESSES", usable_cpus(),
                                     "processes"),
        )
        values["intake_processes"] = checked(validate_intake_processes, env, values["source_url"])
        values.update(checked(validate_cold_cadence, env, values["sync_interval_seconds"]) or {})
        if problems:
            raise SettingsError("invalid settings:\n- " + "\n- ".join(problems))
        if json_destination.data_points and json_destination.overwrite_warning:
            warnings.warn(json_destination.overwrite_warning, KeyTemplateWarning, stacklevel=2)
        return cls(**values)

    @property
    def duckdb_path(self) -> Path:
        """The analytics database that dbt-duckdb builds."""
        return self.home / "analytics.duckdb"

    @property
    def cold_cadence(self) -> ColdCadence | None:
        """The sync's cadence for cold hours, or None (the default: every dirty hour at every tick)."""
        if self.sync_cold_after_hours is None:
            return None
        return ColdCadence(after=timedelta(hours=self.sync_cold_after_hours),
                           every=timedelta(minutes=self.sync_cold_rewrite_minutes))

    @property
    def start_key(self) -> str:
        return self.start.strftime(HOUR_KEY_FORMAT)

    @property
    def reconcile_cron(self) -> str:
        minutes = self.reconcile_interval_minutes
        return f"*/{minutes} * * * *" if minutes < 60 else f"0 */{minutes // 60} * * *"


def _model(model: type[BaseModel], values: dict[str, Any], problems: list[str]) -> Any:
    """The model built from `values`, or None with its validators' messages added to `problems`.

    Only the messages are kept: a ValidationError's text would show the input, secrets included.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        problems += [str(e["ctx"]["error"]) if "error" in e.get("ctx", {}) else f"{e['loc']}: {e['msg']}"
                     for e in exc.errors(include_input=False)]
        return None


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


def _positive_int(env: Mapping[str, str], name: str, default: int, unit: str = "seconds") -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be a whole number of {unit}, at least 1")
    return value


# Each intake process holds three connections to the source (two writers and the status changes).
MAX_DEFAULT_INTAKE_PROCESSES = 4


def validate_intake_processes(env: Mapping[str, str], source_url: str) -> int:
    """On PostgreSQL the CPUs this process may use, at most 4 unless set (a 64-core host would
    otherwise open ~200 connections); 1 on SQLite (more there would only queue on its lock)."""
    sqlite = source_url.startswith("sqlite")
    default = 1 if sqlite else min(usable_cpus(), MAX_DEFAULT_INTAKE_PROCESSES)
    processes = _positive_int(env, "NOTIF_EXPORT_INTAKE_PROCESSES", default, "processes")
    if sqlite and processes > 1:
        raise SettingsError(f"NOTIF_EXPORT_INTAKE_PROCESSES={processes} needs a PostgreSQL source: SQLite takes one "
                            "writer at a time, so the intake runs one process on it; set it to 1 or unset it")
    return processes


def validate_cold_cadence(env: Mapping[str, str], interval: int | None) -> dict[str, int | None]:
    """Both cold-hour settings, or neither; the interval longer than the sync's (or it changes nothing)."""
    after_set = bool(env.get("NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS"))
    every_set = bool(env.get("NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES"))
    if every_set and not after_set:
        raise SettingsError("NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES is set without NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS: "
                            "set the age (in hours) from which an hour is rewritten on that cadence, or unset both")
    after = _positive_int(env, "NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS", 0, "hours") if after_set else None
    every = _positive_int(env, "NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES", DEFAULT_SYNC_COLD_REWRITE_MINUTES, "minutes")
    if after is not None and interval is not None and every * 60 <= interval:
        raise SettingsError(f"NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES={every} is not longer than the sync interval "
                            f"({interval} s), so it would defer nothing; use more minutes, e.g. 60")
    return {"sync_cold_after_hours": after, "sync_cold_rewrite_minutes": every}


def validate_reconcile_interval(minutes: int | None) -> int | None:
    """An interval a cron schedule can keep: a divisor of an hour, or whole hours dividing a day."""
    if minutes is None or (minutes < 60 and 60 % minutes == 0) or (minutes % 60 == 0 and 1440 % minutes == 0):
        return minutes
    raise SettingsError(f"NOTIF_EXPORT_RECONCILE_INTERVAL_MINUTES={minutes} is not an interval a schedule can keep; "
                        "use a divisor of 60 (5, 10, 15, 30) or whole hours dividing a day (60, 120, 180, ..., 1440)")


def default_start(now: datetime) -> datetime:
    """Without NOTIF_EXPORT_START the partitions begin at midnight UTC a week ago."""
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=DEFAULT_HISTORY_DAYS)
