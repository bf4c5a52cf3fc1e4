"""Benchmark: `verify` (the bucket compared with the source, hour by hour) and a reconciliation run.

demo:  7 days of the demo's traffic in SQLite, exported to the local S3 server; `verify` over
       every hour of the three data points, beside its floors (reading the source's keys alone,
       reading the files' keys alone), and one run of the `reconcile` job over the same window.
scale: 10 million messages in PostgreSQL (copies of simulated traffic, as bench/sync_tick.py
       grows them), exported; `verify` of the messages beside the same floors.

    .venv/bin/python bench/verify.py demo
    .venv/bin/python bench/verify.py scale [--messages 10000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from notif_export.dev.local_s3 import LocalS3Server, local_s3_server  # noqa: E402
from notif_export.dev.simulator import Simulator  # noqa: E402
from notif_export.lib.bucket_access import BucketAccess  # noqa: E402
from notif_export.lib.contract import DATA_POINTS, MESSAGES, DataPoint  # noqa: E402
from notif_export.lib.destination import Destination  # noqa: E402
from notif_export.lib.duckdb_s3 import connect_to_bucket  # noqa: E402
from notif_export.lib.export import rewrite_hour  # noqa: E402
from notif_export.lib.hours import hour_start  # noqa: E402
from notif_export.lib.source import TABLES, SourceDatabase  # noqa: E402
from notif_export.lib.verify import bucket_files, verify  # noqa: E402

BUCKET = "bench-verify"


def local_access(server: LocalS3Server) -> BucketAccess:
    creds = server.credentials()
    return BucketAccess(region_name="us-east-1", endpoint_url=server.endpoint_url,
                        aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"])


def hours_of(db: SourceDatabase, dp: DataPoint) -> list[datetime]:
    with db.connect() as conn:
        first, last = conn.execute(sa.select(sa.func.min(TABLES[dp.name].c.created_at),
                                             sa.func.max(TABLES[dp.name].c.created_at))).one()
    start, end = hour_start(_utc(first)), hour_start(_utc(last)) + timedelta(hours=1)
    return [start + timedelta(hours=i) for i in range(int((end - start) / timedelta(hours=1)))]


def _utc(value) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def export_all(db: SourceDatabase, s3, dest: Destination, dp: DataPoint, hours: list[datetime]) -> None:
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda h: rewrite_hour(db, s3, dest, dp, h), hours))
    print(f"  exported {dp.name}: {len(hours)} hours in {time.perf_counter() - started:.1f}s", flush=True)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def floors(db: SourceDatabase, s3, dest: Destination, dp: DataPoint, start: datetime, end: datetime,
           access: BucketAccess) -> tuple[float, float]:
    """Reading the source's keys alone, and the files' key columns alone (a fresh connection with
    verify's settings, every value hashed so that nothing is skipped): what any comparison pays."""
    columns = ["created_at", "updated_at", *dp.unique_key]
    source_seconds, _ = timed(lambda: sum(b.num_rows for b in db.read_range(dp, start, end, columns=columns)))
    uris = ", ".join(f"'{u}'" for u in bucket_files(s3, dest, dp, start, end).values())
    with duckdb.connect() as con:
        connect_to_bucket(con, access)
        for setting in ("prefetch_all_parquet_files = true", "threads = 16"):
            con.execute(f"SET {setting}")
        file_seconds, _ = timed(lambda: con.execute(
            f"SELECT sum(hash({', '.join(columns)})::HUGEINT) FROM read_parquet([{uris}])").fetchone())
    return source_seconds, file_seconds


def report(name: str, dp: DataPoint, db: SourceDatabase, s3, dest: Destination, start: datetime, end: datetime,
           access: BucketAccess) -> None:
    source_floor, file_floor = floors(db, s3, dest, dp, start, end, access)
    with duckdb.connect() as con:
        connect_to_bucket(con, access)
        seconds, result = timed(lambda: verify(db, s3, dest, dp, start, end, con))
    assert not result.drift, result.totals()
    print(f"{name:<28} {dp.name:<20} {result.hours_checked:>6} {result.source_rows:>11,} {seconds:>8.1f}s "
          f"{result.source_rows / seconds:>11,.0f} {source_floor:>10.1f}s {file_floor:>10.1f}s", flush=True)


HEADER = (f"{'case':<28} {'data point':<20} {'hours':>6} {'rows':>11} {'verify':>9} {'rows/s':>11} "
          f"{'src keys':>11} {'file keys':>11}")


def demo(home: Path, server: LocalS3Server) -> None:
    db = SourceDatabase(f"sqlite:///{home / 'demo7d.db'}")
    db.init_schema()
    now = hour_start(datetime.now(timezone.utc)) - timedelta(hours=1)
    if db.max_updated_at(MESSAGES) is None:
        print("simulating 7 days of the demo's traffic ...", flush=True)
        Simulator(db, seed=0).history(7 * 24, now)
    s3, dest = server.client(), Destination(bucket=BUCKET)
    start, end = now - timedelta(days=7), now + timedelta(hours=1)
    if not bucket_files(s3, dest, MESSAGES, start, end):
        for dp in DATA_POINTS.values():
            export_all(db, s3, dest, dp, hours_of(db, dp))
    print("\n" + HEADER)
    for dp in DATA_POINTS.values():
        report("demo traffic, 7 days", dp, db, s3, dest, start, end, local_access(server))

    # One reconciliation run (the `reconcile` job, in process) over the same window.
    import dagster as dg

    from notif_export.definitions import build_definitions

    env = {**os.environ, **server.aws_env(), "NOTIF_EXPORT_HOME": str(home), "NOTIF_EXPORT_BUCKET": BUCKET,
           "NOTIF_EXPORT_SOURCE_URL": db.url.render_as_string(hide_password=False),
           "NOTIF_EXPORT_START": f"{start:%Y-%m-%d-%H:00}"}
    os.environ.update(server.aws_env())  # the resources read their secrets by reference, from here
    defs = build_definitions(env)
    with dg.instance_for_test() as instance:
        # As after a backfill of the window: every hour recorded as exported.
        instance.report_runless_asset_event(dg.AssetMaterialization("messages", partition=f"{start:%Y-%m-%d-%H:00}"))
        for name in ("requests", "workflow_executions"):
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=f"{start:%Y-%m-%d-%H:00}"))
        seconds, result = timed(lambda: defs.resolve_job_def("reconcile").execute_in_process(instance=instance))
        assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    print(f"\nreconcile job run (3 checks, 7 days, nothing to repair): {seconds:.1f}s", flush=True)
    db.dispose()


def scale(home: Path, server: LocalS3Server, messages: int, admin: str) -> None:
    from sync_tick import database, grow_messages

    url = database(f"notif_export_bench_verify_{messages}", admin)
    grow_messages(url, messages)
    db = SourceDatabase(url.replace("postgresql://", "postgresql+psycopg://"))
    s3, dest = server.client(), Destination(bucket=BUCKET, prefix=f"scale{messages}/")
    hours = hours_of(db, MESSAGES)
    start, end = hours[0], hours[-1] + timedelta(hours=1)
    if len(bucket_files(s3, dest, MESSAGES, start, end)) < len(hours) * 0.9:
        export_all(db, s3, dest, MESSAGES, hours)
    print("\n" + HEADER)
    report(f"{messages:,} messages", MESSAGES, db, s3, dest, start, end, local_access(server))
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["demo", "scale"])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--home", type=Path, default=Path(".notif_export/bench_verify"))
    args = parser.parse_args()
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    with local_s3_server(home / "s3", (BUCKET,)) as server:
        demo(home, server) if args.case == "demo" else scale(home, server, args.messages, args.admin_url)


if __name__ == "__main__":
    pa.set_cpu_count(2)
    main()
