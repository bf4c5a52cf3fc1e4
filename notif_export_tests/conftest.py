"""Real components for the tests: the local S3 server, SQLite and PostgreSQL sources.

PostgreSQL is the server on 127.0.0.1:5432 when it answers; otherwise a throwaway cluster is
started when the server binaries exist; otherwise the PostgreSQL tests are skipped and the run
says so loudly at the end.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.dev.local_s3 import LocalS3Server, find_free_port, wait_for_port
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.hours import hour_key
from notif_export.lib.source import TABLES, SourceDatabase

# A fixed clock for the simulated traffic: whole-hour arithmetic stays readable in tests.
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc)

POSTGRES_MISSING = ("PostgreSQL is not running on 127.0.0.1:5432 and no server binaries (initdb) were found: "
                    "every PostgreSQL test was SKIPPED. Install postgresql to run them.")


# The files of the longest tests (minutes each, mostly waiting on a daemon or the demo), longest
# first.
LONGEST_FIRST = ("test_readme.py", "test_fault_campaign.py", "test_sync_daemon.py", "test_analytics_assets.py",
                 "test_production_instance.py")


def pytest_collection_modifyitems(items):
    """The long tests first in each worker's share: pytest-xdist's work stealing hands each worker
    a contiguous share of the collection, in order, and idle workers then take from the ends of
    the others' shares. Each share therefore starts with its turn of the long tests (dealt out
    longest first), so that no worker is left at the end with one of them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    ordered = sorted(items, key=lambda item: rank.get(item.path.name, len(rank)))  # stable
    long_tests = [item for item in ordered if item.path.name in rank]
    others = ordered[len(long_tests):]
    size = len(items) // workers  # the share of each worker but the last, which takes the rest
    shares = [long_tests[n::workers] for n in range(workers)]
    for n, share in enumerate(shares):
        wanted = size if n < workers - 1 else len(items) - size * (workers - 1)
        take = max(0, wanted - len(share))
        share += others[:take]
        others = others[take:]
    items[:] = [item for share in shares for item in share] + others


def pytest_terminal_summary(terminalreporter):
    # Read from the skip reports, which reach the controlling process also when pytest-xdist's
    # workers ran the tests.
    if any(POSTGRES_MISSING in str(report.longrepr) for report in terminalreporter.stats.get("skipped", [])):
        terminalreporter.write_sep("!", "POSTGRESQL TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(POSTGRES_MISSING, red=True)


# ---- S3 ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> LocalS3Server:
    server = LocalS3Server(tmp_path_factory.mktemp("s3"), port=find_free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws_env(s3_server, monkeypatch) -> dict[str, str]:
    """The process environment pointed at the local server, as a user would set it."""
    env = s3_server.aws_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def list_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def read_object(s3, bucket: str, key: str) -> pa.Table:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(pa.BufferReader(body))


# ---- PostgreSQL ----------------------------------------------------------------------------------
def _pg_admin_url() -> str | None:
    for url in ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://root@127.0.0.1:5432/postgres"):
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    return None


def _throwaway_cluster(base: Path) -> tuple[str, callable] | None:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or ([shutil.which("initdb")] if shutil.which("initdb") else [])
    if not bins:
        return None
    bindir = Path(bins[-1]).parent
    data = base / "pgdata"
    user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if user:
        shutil.chown(base, "postgres")
    port = find_free_port(30_000, 31_000)
    subprocess.run([*user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "start",
                    "-o", f"-h 127.0.0.1 -p {port} -k {data}"], check=True, capture_output=True)

    def stop():
        subprocess.run([*user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    url = _pg_admin_url()
    stop = None
    if url is None:
        started = _throwaway_cluster(tmp_path_factory.mktemp("pg"))
        if started is None:
            pytest.skip(POSTGRES_MISSING)
        url, stop = started
    yield url
    if stop:
        stop()


def fresh_pg_database(pg_admin_url: str) -> Iterator[str]:
    """A new database on the test server (its libpq URL), dropped afterwards."""
    name = f"notif_export_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin_url) -> str:
    """A fresh database for one test (a SQLAlchemy URL), dropped afterwards."""
    for url in fresh_pg_database(pg_admin_url):
        yield url.replace("postgresql://", "postgresql+psycopg://")


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def source(source_url) -> SourceDatabase:
    db = SourceDatabase(source_url)
    db.init_schema()
    yield db
    db.dispose()


# ---- AWS's own APIs (STS, IAM, KMS), which SeaweedFS does not have: moto's server ------------
class MotoServer:
    """moto's server in its own process on 127.0.0.1. With `free_actions`, IAM policies are
    enforced after that many requests (the setup's), as AWS would."""

    ADMIN = {"aws_access_key_id": "AKIAADMINADMINADMIN0", "aws_secret_access_key": "admin-secret"}

    def __init__(self, free_actions: int | None = None):
        self.port = find_free_port(30_000, 39_000)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ}
        if free_actions is not None:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(free_actions)
        self.proc = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
                                      "-p", str(self.port)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port(self.port, self.proc, "moto_server")
        except RuntimeError:
            self.stop()
            raise

    def client(self, service: str, region: str = "us-east-1", **credentials):
        return boto3.client(service, endpoint_url=self.url, region_name=region, **(credentials or self.ADMIN))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def moto_with_user(actions: list[str], bucket: str) -> tuple[MotoServer, dict[str, str]]:
    """moto enforcing IAM, with a bucket and a user allowed only `actions`; its credentials."""
    server = MotoServer(free_actions=4)
    iam = server.client("iam")
    iam.create_user(UserName="exporter")
    iam.put_user_policy(UserName="exporter", PolicyName="export", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]}))
    key = iam.create_access_key(UserName="exporter")["AccessKey"]
    server.client("s3").create_bucket(Bucket=bucket)
    return server, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture(scope="session")
def moto():
    server = MotoServer()
    yield server
    server.stop()


# ---- exporting through Dagster ----------------------------------------------------------------
def export_env(source_url: str, bucket: str, aws_env: dict, **settings: str) -> dict[str, str]:
    # Retries after 1, 2 and 4 s instead of 5, 10 and 20: the tests that make S3 or the database
    # unreachable wait for every retry.
    return {**aws_env, "NOTIF_EXPORT_SOURCE_URL": source_url, "NOTIF_EXPORT_BUCKET": bucket,
            "NOTIF_EXPORT_START": hour_key(NOW - timedelta(days=1)), "NOTIF_EXPORT_RETRY_DELAY_SECONDS": "1",
            **settings}


def materialize(env: dict[str, str], hours: list, selection=None, raise_on_error=True) -> dg.ExecuteInProcessResult:
    """One run of the export assets over a range of hours."""
    defs = build_definitions(env)
    tags = {"dagster/asset_partition_range_start": hour_key(hours[0]),
            "dagster/asset_partition_range_end": hour_key(hours[-1])}
    return dg.materialize(
        [defs.get_assets_def(name) for name in (selection or DATA_POINTS)],
        resources=defs.resources, tags=tags, raise_on_error=raise_on_error,
    )


# ---- the source, read independently of the exporter --------------------------------------------
def source_rows(db: SourceDatabase, data_point: str, hour: datetime) -> list[dict]:
    """The hour's rows as plain Python values, through SQLAlchemy, sorted by the unique key."""
    dp = DATA_POINTS[data_point]
    table = TABLES[data_point]
    start = hour.replace(minute=0, second=0, microsecond=0)
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(*(table.c[c] for c in dp.columns)).where(
                table.c.created_at >= db._param(start), table.c.created_at < db._param(start + timedelta(hours=1))
            )
        ).mappings().all()
    return sorted_rows((dict(r) for r in rows), data_point)


def normalize(row: dict) -> dict:
    """UTC-aware datetimes with microseconds, so SQLite, PostgreSQL and Parquet values compare."""
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            v = v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)
        out[k] = v
    return out


def key_of(row: dict, data_point: str) -> tuple:
    return tuple(row[c] or "" for c in DATA_POINTS[data_point].unique_key)


def sorted_rows(rows, data_point: str) -> list[dict]:
    """Rows normalized and sorted by the data point's unique key, for comparison."""
    return sorted((normalize(r) for r in rows), key=lambda r: key_of(r, data_point))


def file_rows(table: pa.Table, data_point: str) -> list[dict]:
    return sorted_rows(table.to_pylist(), data_point)
