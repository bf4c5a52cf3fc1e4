"""Benchmark: one hour of >= 500,000 messages in PostgreSQL exported to the local S3 server.

Prints rows/s and peak RSS of notif_export's rewrite_hour beside the peers measured in the same
run on the same hour: PostgreSQL's binary COPY (the read floor), Parquet encoding of the table
already in memory (the encode floor), one S3 PUT of the finished file (the upload floor) and
pandas.read_sql -> to_parquet; with `--with-dlt`, dlt 1.31's `sql_table` (connectorx backend) ->
filesystem destination on S3 (`dlt_hour.py`, in its own environment under .notif_export/, created
on first use: dlt pins an older boto3 than notif_export's). With `--sizes`, rewrite_hour also runs
on hours of a quarter-million and a million rows (copies of the hour, `bench_hours.py`), to show
that its memory is flat in the hour's size. Each measurement runs in a fresh process (for an
honest peak RSS); runs are interleaved and the median is reported, with the range of peak RSS.

    .venv/bin/python bench/export_hour.py [--rows 500000] [--runs 5] [--with-dlt] [--sizes] [--skip-pandas]
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
# Hours of other sizes: (hour, copies, eighths of the benchmark hour per copy).
SIZES = {"250k": (HOUR - timedelta(days=1), 1, 4), "1M": (HOUR - timedelta(days=2), 2, 8)}
DLT_REQUIREMENTS = ["dlt[parquet,s3,sql-database]==1.31.0", "connectorx", "psycopg2-binary",
                    "boto3>=1.43.115,<1.43.118"]


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
def measure(kind: str, url: str, endpoint: str, creds: dict, bucket: str, hour: str | None = None) -> dict:
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
        at = datetime.fromisoformat(hour) if hour else HOUR
        result = rewrite_hour(SourceDatabase(url), s3, Destination(bucket=bucket), MESSAGES, at)
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


def dlt_python() -> Path:
    """The Python of dlt's own environment, created on first use."""
    from notif_export.lib.settings import PROJECT_DIR

    venv = PROJECT_DIR / ".notif_export" / "bench-dlt-venv"
    python = venv / "bin" / "python"
    if not (venv / "installed").exists():
        print(f"creating dlt's environment in {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DLT_REQUIREMENTS], check=True)
        (venv / "installed").write_text("\n".join(DLT_REQUIREMENTS) + "\n")
    return python


def measure_dlt(python: Path, url: str, endpoint: str, creds: dict, bucket: str) -> dict:
    from notif_export.lib.contract import MESSAGES

    params = {"pg": url.replace("+psycopg", ""), "start": HOUR.isoformat(),
              "end": (HOUR + timedelta(hours=1)).isoformat(), "endpoint": endpoint, "bucket": bucket,
              "access_key": creds["access_key"], "secret_key": creds["secret_key"], "columns": MESSAGES.columns}
    out = subprocess.run([str(python), str(Path(__file__).parent / "dlt_hour.py"), json.dumps(params)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    parser.add_argument("--with-dlt", action="store_true", help="measure dlt (connectorx backend) on the same hour")
    parser.add_argument("--sizes", action="store_true", help="rewrite_hour on hours of 250k and 1M rows too")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return

    from bench_hours import copy_hour

    from notif_export.dev.local_s3 import LocalS3Server, find_free_port

    url = fill(args.pg, args.rows)
    python = dlt_python() if args.with_dlt else None
    sizes = {name: copy_hour(url.replace("+psycopg", ""), HOUR, *spec) for name, spec in SIZES.items()} \
        if args.sizes else {}
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalS3Server(Path(tmp), port=find_free_port()).start(buckets=("bench",))
        try:
            params = {"url": url, "endpoint": server.endpoint_url, "creds": server.credentials(), "bucket": "bench"}
            kinds = (["notif_export", "pg_copy_floor", "encode_floor", "put_floor"]
                     + ([] if args.skip_pandas else ["pandas"]) + (["dlt"] if args.with_dlt else [])
                     + [f"notif_export_{name}" for name in sizes])
            results: dict[str, list[dict]] = {k: [] for k in kinds}
            for run in range(args.runs):
                for kind in kinds:  # interleaved
                    if kind == "dlt":
                        results[kind].append(measure_dlt(python, **params))
                        continue
                    measured = {"kind": kind, **params}
                    if kind.startswith("notif_export_"):
                        size = kind.removeprefix("notif_export_")
                        measured.update(kind="notif_export", hour=SIZES[size][0].isoformat())
                    out = subprocess.run([sys.executable, __file__, "--measure", json.dumps(measured)],
                                         check=True, capture_output=True, text=True).stdout
                    results[kind].append(json.loads(out.strip().splitlines()[-1]))
                print(f"run {run + 1}/{args.runs} done", flush=True)
        finally:
            server.stop()
    rows = results["notif_export"][0]["rows"]
    print(f"\none hour of {rows:,} messages (PostgreSQL -> local SeaweedFS), median of {args.runs} interleaved runs\n")
    print(f"{'path':<48}{'rows':>10}{'seconds':>9}{'rows/s':>10}{'MB/s':>7}{'peak RSS MB (range)':>22}")
    labels = {"notif_export": "notif_export rewrite_hour (ADBC, streamed)", "pg_copy_floor": "PostgreSQL COPY binary (read floor)",
              "encode_floor": "Parquet encode, in memory (encode floor)", "put_floor": "one S3 PUT of the file (upload floor)",
              "pandas": "pandas.read_sql -> to_parquet -> upload",
              "dlt": "dlt 1.31 sql_table, connectorx -> S3 Parquet",
              **{f"notif_export_{name}": f"notif_export rewrite_hour, {name} hour" for name in sizes}}
    rates = {}
    for kind, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        n = runs[0]["rows"] if kind.startswith("notif_export_") else rows
        rates[kind] = n / seconds
        peaks = sorted(r["peak_rss_mb"] for r in runs)
        peak = f"{statistics.median(peaks):.0f} ({peaks[0]:.0f}-{peaks[-1]:.0f})"
        mb = statistics.median(r["bytes"] for r in runs) / 1e6
        print(f"{labels[kind]:<48}{n:>10,}{seconds:>9.2f}{n / seconds:>10,.0f}{mb / seconds:>7.0f}{peak:>22}")
    print(f"\nnotif_export / read floor: {rates['notif_export'] / rates['pg_copy_floor']:.0%} of the floor's rows/s "
          "(the target: 260,000 rows/s where the floor reads 435,000, so 60 %)")
    if "dlt" in rates:
        print(f"\nnotif_export / dlt (connectorx): {rates['notif_export'] / rates['dlt']:.2f}x the rows/s")
    print(f"\nfile size: {results['notif_export'][0]['bytes'] / 1e6:.1f} MB snappy Parquet; target: >= 260,000 rows/s, <= 300 MB peak RSS")


if __name__ == "__main__":
    main()
