"""Benchmark: the JSON objects destination, 10,000 records -> 10,000 objects in the local S3 server.

Measured in the same run, on the same records:
  exporter     `write_objects`: encode each record, render its key, PUT concurrently, in one
               process and split over --processes worker processes
  sequential   the same objects PUT one after the other on one thread (the floor: no concurrency)
  encode only  bodies, metadata and keys without any PUT (the CPU ceiling of one thread)

    .venv/bin/python bench/json_objects.py [--records 10000] [--workers N] [--processes N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from notif_export.dev.local_s3 import local_s3_server  # noqa: E402
from notif_export.dev.simulator import Simulator, TrafficMix  # noqa: E402
from notif_export.lib.bad_rows import BadRows  # noqa: E402
from notif_export.lib.contract import REQUESTS  # noqa: E402
from notif_export.lib.json_objects import ObjectsWritten, prepare_objects, write_objects  # noqa: E402
from notif_export.lib.settings import Settings  # noqa: E402
from notif_export.lib.source import SourceDatabase  # noqa: E402

BUCKET = "bench-json"


def records(folder: Path, count: int) -> pa.RecordBatch:
    """`count` simulated requests, read back as the exporter reads them."""
    db = SourceDatabase(f"sqlite:///{folder / 'source.db'}")
    db.init_schema()
    now = datetime.now(timezone.utc)
    Simulator(db, seed=1, mix=TrafficMix(requests_per_hour=count * 1.1)).history(1, now)
    batches = list(db.read_updated(REQUESTS, None, now + timedelta(days=1), BadRows()))
    db.dispose()
    rows = pa.Table.from_batches(batches).slice(0, count).combine_chunks().to_batches()[0]
    if rows.num_rows < count:
        raise SystemExit(f"only {rows.num_rows} records simulated")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=None,
                        help="concurrent PUTs per process (default: the client's pool)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: the CPU count, as NOTIF_EXPORT_EXPORT_PROCESSES)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-json-") as tmp, \
            local_s3_server(Path(tmp) / "s3", buckets=(BUCKET,)) as server:
        batch = records(Path(tmp), args.records)
        settings = Settings.from_env({**server.aws_env(), "NOTIF_EXPORT_HOME": tmp, "NOTIF_EXPORT_BUCKET": BUCKET,
                                      "NOTIF_EXPORT_JSON_DATA_POINTS": "requests"})
        s3, destination = settings.bucket_access.s3_client(), settings.json_destination
        rows = batch.to_pylist()

        start = time.perf_counter()
        objects = list(prepare_objects(REQUESTS, destination, rows, "bench-encode", ObjectsWritten()))
        encode = time.perf_counter() - start

        start = time.perf_counter()
        for obj in objects:
            s3.put_object(Bucket=BUCKET, Key="sequential/" + obj.key, Body=obj.body, ContentType="application/json",
                          **destination.put_args(obj.metadata))
        sequential = time.perf_counter() - start

        exporter = {}
        for processes in (1, args.processes):
            start = time.perf_counter()
            written = write_objects(s3, destination, REQUESTS, [batch], f"bench-run-{processes}", workers=args.workers,
                                    access=settings.bucket_access, processes=processes)
            exporter[processes] = time.perf_counter() - start
            assert written.objects == args.records and written.failed_keys == 0, written

        size = sum(len(o.body) for o in objects) / len(objects)
        workers = args.workers or s3.meta.config.max_pool_connections
        print(f"{args.records:,} records of requests, {size:,.0f} bytes per object on average, local S3 server")
        print(f"{'':<34}{'seconds':>10}{'objects/s':>12}")
        rows = [(f"exporter, {p} process{'es' if p > 1 else ''} x {workers} PUTs", seconds)
                for p, seconds in exporter.items()]
        for name, seconds in rows + [("sequential PUTs (floor)", sequential), ("encode + key only (no PUT)", encode)]:
            print(f"{name:<34}{seconds:>10.2f}{args.records / seconds:>12,.0f}")
        print(f"exporter ({args.processes} processes) / sequential: {sequential / exporter[args.processes]:.1f}x")


if __name__ == "__main__":
    main()
