"""Benchmark: one hour of >= 500,000 messages in PostgreSQL exported to the local S3 server.

Prints rows/s and peak RSS of notif_export's rewrite_hour beside the peers measured in the same
run on the same hour: PostgreSQL's binary COPY (the read floor), Parquet encoding of the table
already in memory (the encode floor), one S3 PUT of the finished file (the upload floor) and
pandas.read_sql -> to_parquet. Each measurement runs in a fresh process (for an honest peak RSS);
runs are interleaved and the median is reported.

    .venv/bin/python bench/export_hour.py [--rows 500000] [--runs 5] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

HOUR = datetime(2026, 1, 15, 14, tzinfo=timezone.utc)
DB = "notif_export_bench"


def fill(admin_url: str, rows: int) -> str:
    """A database holding one hour of at least `rows` messages (kept between runs)."""
    import sqlalchemy as sa

    from notif_export.dev.simulator import Simulator, TrafficMix
    from notif_export.lib.source import TABLES, SourceDatabase

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{DB}"
    source = SourceDatabase(url)
    source.init_schema()
    with source.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(TABLES["messages"])).scalar()
    if have < rows:
        print(f"filling {DB} with {rows} messages in one hour (once; kept for later runs)...", flush=True)
        # ~7 messages per request at the default mix.
        sim = Simulator(source, seed=42, mix=TrafficMix(requests_per_hour=rows / 6.5))
        start = HOUR
        while have < rows:
            step = timedelta(minutes=5)
            batch = sim.traffic(start, start + step, HOUR + timedelta(hours=1))
            batch.requests.clear()
            batch.workflow_executions.clear()
            have += sim.write(batch)["messages"]
            start += step
            if start >= HOUR + timedelta(hours=1):
                start = HOUR  # more passes over the hour; new ids keep keys unique
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE messages")
    return url


# ---- one measurement, in its own process ------------------------------------------------------------
def measure(kind: str, url: str, endpoint: str, creds: dict, bucket: str) -> dict:
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    from notif_export.lib.contract import MESSAGES
    from notif_export.lib.destination import Destination
    from notif_export.lib.export import rewrite_hour
    from notif_export.lib.source import SourceDatabase

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"])
    pg = url.replace("+psycopg", "")
    where = f"created_at >= '{HOUR.isoformat()}' AND created_at < '{(HOUR + timedelta(hours=1)).isoformat()}'"
    rows = bytes_ = 0
    started = time.perf_counter()
    if kind == "notif_export":
        result = rewrite_hour(SourceDatabase(url), s3, Destination(bucket=bucket), MESSAGES, HOUR)
        rows, bytes_ = result.rows, result.bytes
    elif kind == "pg_copy_floor":
        cols = ", ".join(f'"{c}"' for c in MESSAGES.columns)
        with psycopg.connect(pg) as conn, conn.cursor().copy(
                f"COPY (SELECT {cols} FROM messages WHERE {where}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                bytes_ += len(chunk)
    elif kind in ("encode_floor", "put_floor"):
        table = pq.read_table(pa.BufferReader(
            s3.get_object(Bucket=bucket, Key=Destination(bucket=bucket).object_key("messages", HOUR))["Body"].read()))
        rows = table.num_rows
        sink = pa.BufferOutputStream()
        started = time.perf_counter()
        pq.write_table(table, sink, compression="snappy")
        body = sink.getvalue()
        bytes_ = body.size
        if kind == "put_floor":
            started = time.perf_counter()
            s3.put_object(Bucket=bucket, Key="bench/put_floor.parquet", Body=body.to_pybytes())
    elif kind == "pandas":
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        frame = pd.read_sql(f"SELECT {', '.join(MESSAGES.columns)} FROM messages WHERE {where}", engine)
        with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
            frame.to_parquet(tmp.name, compression="snappy")
            s3.upload_file(tmp.name, bucket, "bench/pandas.parquet")
            bytes_ = Path(tmp.name).stat().st_size
        rows = len(frame)
    seconds = time.perf_counter() - started
    return {"kind": kind, "seconds": seconds, "rows": rows, "bytes": bytes_, "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-pandas", action="store_true", help="leave out the slowest peer")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return

    from notif_export.dev.local_s3 import LocalS3Server, find_free_port

    url = fill(args.pg, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalS3Server(Path(tmp), port=find_free_port()).start(buckets=("bench",))
        try:
            params = {"url": url, "endpoint": server.endpoint_url, "creds": server.credentials(), "bucket": "bench"}
            kinds = ["notif_export", "pg_copy_floor", "encode_floor", "put_floor"] + ([] if args.skip_pandas else ["pandas"])
            results: dict[str, list[dict]] = {k: [] for k in kinds}
            for run in range(args.runs):
                for kind in kinds:  # interleaved
                    out = subprocess.run([sys.executable, __file__, "--measure", json.dumps({"kind": kind, **params})],
                                         check=True, capture_output=True, text=True).stdout
                    results[kind].append(json.loads(out.strip().splitlines()[-1]))
                print(f"run {run + 1}/{args.runs} done", flush=True)
        finally:
            server.stop()
    rows = results["notif_export"][0]["rows"]
    print(f"\none hour of {rows:,} messages (PostgreSQL -> local SeaweedFS), median of {args.runs} interleaved runs\n")
    print(f"{'path':<44}{'seconds':>9}{'rows/s':>12}{'MB/s':>8}{'peak RSS MB':>13}")
    labels = {"notif_export": "notif_export rewrite_hour (ADBC, streamed)", "pg_copy_floor": "PostgreSQL COPY binary (read floor)",
              "encode_floor": "Parquet encode, in memory (encode floor)", "put_floor": "one S3 PUT of the file (upload floor)",
              "pandas": "pandas.read_sql -> to_parquet -> upload"}
    for kind, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_rss_mb"] for r in runs)
        mb = statistics.median(r["bytes"] for r in runs) / 1e6
        print(f"{labels[kind]:<44}{seconds:>9.2f}{rows / seconds:>12,.0f}{mb / seconds:>8.0f}{peak:>13.0f}")
    print(f"\nfile size: {results['notif_export'][0]['bytes'] / 1e6:.1f} MB snappy Parquet; target: >= 260,000 rows/s, <= 300 MB peak RSS")


if __name__ == "__main__":
    main()
