"""Benchmark: `dbt build` of dbt_project/ over 10 million exported messages, full and incremental.

One day of simulated traffic is exported to the local S3 server, then copied day by day (ids
suffixed, timestamps shifted) until the bucket holds the messages asked for, hour files as the
export writes them. Then, on DuckDB reading the bucket:

- a full build (`dbt build --full-refresh`), the peer every incremental build is measured against;
- an incremental build with nothing changed;
- an incremental build after two hours' files were rewritten (statuses moved on), as after a sync;
- and, for the same change, a full rebuild again.

    .venv/bin/python bench/dbt_build.py [--messages 10000000] [--rate 2400] [--home .notif_export/bench_dbt]

The bucket is kept in --home between runs (generating it takes minutes); dbt's output goes to
<home>/dbt-*.log.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from notif_export.dev.local_s3 import LocalS3Server, local_s3_server
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib import analytics
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.export import rewrite_hour
from notif_export.lib.settings import Settings
from notif_export.lib.source import SourceDatabase

BUCKET = "notif-export"
LAST_DAY = datetime(2026, 1, 16, tzinfo=timezone.utc)  # the simulated day ends here; copies go back
SLOWEST_NODES = 12  # listed at the end of each build's log
ID_COLUMNS = ("idempotency_key", "execution_id", "wf_execution_id", "broadcast_execution_id", "message_id",
              "parent_object_execution_id")


def suffixed(column: pa.ChunkedArray, suffix: str) -> pa.Array:
    return pc.binary_join_element_wise(column, pa.scalar(suffix), "")


def copy_of(table: pa.Table, day: int) -> pa.Table:
    """The table as if it happened `day` days earlier, with ids of its own."""
    suffix = f"~{day}"
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_timestamp(field.type):
            column = pc.subtract(column, pa.scalar(timedelta(days=day), pa.duration("us")))
        elif field.name in ID_COLUMNS:
            column = suffixed(column, suffix)
        elif field.name == "executions":
            lists = column.combine_chunks()
            items = lists.flatten()
            renamed = pa.StructArray.from_arrays(
                [suffixed(items.field(f.name), suffix) if f.name == "exec_id" else items.field(f.name)
                 for f in items.type], fields=list(items.type))
            column = pa.ListArray.from_arrays(lists.offsets, renamed, mask=lists.is_null())
        table = table.set_column(i, field, column)
    return table


def fill(server: LocalS3Server, home: Path, messages: int, rate: float) -> int:
    s3 = server.client()
    marker = s3.list_objects_v2(Bucket=BUCKET, Prefix="_bench/").get("Contents", [])
    if marker and int(marker[0]["Key"].split("/")[1]) >= messages:
        return int(marker[0]["Key"].split("/")[1])
    print(f"simulating one day at {rate:.0f} requests/h ...", flush=True)
    db = SourceDatabase(f"sqlite:///{home / 'day.db'}")
    db.init_schema()
    Simulator(db, seed=7, mix=TrafficMix(requests_per_hour=rate)).history(24, LAST_DAY)
    dest = Destination(bucket=BUCKET)
    hours = [LAST_DAY - timedelta(hours=h) for h in range(1, 25)]
    for dp in DATA_POINTS.values():
        for hour in hours:
            rewrite_hour(db, s3, dest, dp, hour)
    day_files = {(dp, hour): pq.read_table(io.BytesIO(s3.get_object(
        Bucket=BUCKET, Key=dest.object_key(dp, hour))["Body"].read())) for dp in DATA_POINTS for hour in hours}
    per_day = sum(t.num_rows for (dp, _), t in day_files.items() if dp == "messages")
    days = -(-messages // per_day)
    print(f"{per_day} messages a day: copying to {days} days ...", flush=True)

    def put_day(day: int) -> None:
        for (dp, hour), table in day_files.items():
            sink = io.BytesIO()
            pq.write_table(copy_of(table, day), sink, compression="snappy")
            s3.put_object(Bucket=BUCKET, Key=dest.object_key(dp, hour - timedelta(days=day)), Body=sink.getvalue(),
                          ServerSideEncryption="AES256")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put_day, range(1, days)))
    total = per_day * days
    s3.put_object(Bucket=BUCKET, Key=f"_bench/{total}", Body=b"")
    return total


def touch_two_hours(server: LocalS3Server) -> None:
    """Rewrite two hours' messages files with some statuses moved on, as the sync would."""
    s3 = server.client()
    dest = Destination(bucket=BUCKET)
    now = datetime.now(timezone.utc)
    for hour in (LAST_DAY - timedelta(hours=3), LAST_DAY - timedelta(hours=13)):
        key = dest.object_key("messages", hour)
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        moved = pc.less(pa.array(range(table.num_rows)), 100)
        table = table.set_column(table.schema.get_field_index("message_status"), "message_status",
                                 pc.if_else(moved, pa.scalar("clicked"), table.column("message_status")))
        table = table.set_column(table.schema.get_field_index("updated_at"), "updated_at",
                                 pc.if_else(moved, pa.scalar(now, pa.timestamp("us", tz="UTC")),
                                            table.column("updated_at")))
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy")
        s3.put_object(Bucket=BUCKET, Key=key, Body=sink.getvalue(), ServerSideEncryption="AES256")


def timed_build(env: dict[str, str], home: Path, name: str, *args: str) -> float:
    analytics.prepare_duckdb(env)
    start = time.perf_counter()
    with open(home / f"dbt-{name}.log", "w") as log:
        done = subprocess.run([analytics.dbt_executable(), "build", *args], cwd=analytics.DBT_PROJECT_DIR,
                              env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"dbt build {' '.join(args)} failed; see {home / f'dbt-{name}.log'}")
    # Where the time went: dbt's own figures per model and test, the slowest first.
    results = json.loads((analytics.DBT_PROJECT_DIR / "target" / "run_results.json").read_text())["results"]
    slowest = sorted(results, key=lambda r: -r["execution_time"])[:SLOWEST_NODES]
    with open(home / f"dbt-{name}.log", "a") as log:
        log.write(f"\n{sum(r['execution_time'] for r in results):.1f} s in {len(results)} nodes; the slowest:\n")
        log.writelines(f"{r['execution_time']:8.2f}  {r['unique_id']}\n" for r in slowest)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--rate", type=float, default=2400, help="simulated requests per hour")
    parser.add_argument("--home", type=Path, default=Path(".notif_export/bench_dbt"))
    args = parser.parse_args()
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    with local_s3_server(home / "s3", (BUCKET,)) as server:
        total = fill(server, home, args.messages, args.rate)
        aws = server.aws_env()
        config = Settings.from_env({**aws, "NOTIF_EXPORT_HOME": str(home)})
        env = {**analytics.dbt_env(config),
               **analytics.secrets_env(config.bucket_access.session().get_credentials(), config.dbt.bigquery_token)}
        files = sum(1 for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                    for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
        print(f"bucket: {total:,} messages in {files:,} files\n", flush=True)
        figures = [("full build (--full-refresh)", timed_build(env, home, "full", "--full-refresh")),
                   ("incremental, nothing changed", timed_build(env, home, "noop"))]
        time.sleep(1.1)  # the rewritten files get a later modification second than the build's watermark
        touch_two_hours(server)
        figures.append(("incremental, 2 hours rewritten", timed_build(env, home, "incremental")))
        figures.append(("full build, same data (peer)", timed_build(env, home, "full-again", "--full-refresh")))
        with duckdb.connect(str(config.duckdb_path), read_only=True) as con:
            rows = con.execute("select count(*) from main.messages").fetchone()[0]
        print(f"{'dbt build (DuckDB over the bucket, 2 threads)':<45} {'seconds':>8}")
        for name, seconds in figures:
            print(f"{name:<45} {seconds:>8.1f}")
        print(f"\nmessages table: {rows:,} rows (bucket: {total:,}); the slowest models and tests of each build "
              f"are at the end of {home}/dbt-<build>.log")


if __name__ == "__main__":
    main()
