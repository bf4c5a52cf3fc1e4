"""Benchmark: many hours of `messages` exported through Dagster runs (PostgreSQL -> local S3 server).

Hours are copies of a sample of `export_hour.py`'s benchmark hour (`bench_hours.py`; an eighth
of it by default, so 72 hours fit a laptop's disk). Each run is a fresh process that materializes
the `messages` asset over its hours (`dg.materialize`, as a run worker does), and prints:

- one run rewriting 24 hours next to 24 runs rewriting one hour each (the cost of a run's start);
- a 72-hour rewrite with NOTIF_EXPORT_EXPORT_PROCESSES at its default (the CPU count) next to the
  same rewrite in one process;
- the peak RSS of each run's whole process tree (sampled every 20 ms).

    .venv/bin/python bench/export_hours.py [--share-of-8 1] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hours import copy_hour  # noqa: E402
from export_hour import HOUR, fill  # noqa: E402

FIRST = HOUR + timedelta(days=1)  # the copies start a day after the benchmark hour


def run_hours(hours: list[datetime], env: dict[str, str]) -> dict:
    """One Dagster run of the `messages` asset over `hours` (a range), in this process."""
    import dagster as dg

    from notif_export.definitions import build_definitions
    from notif_export.lib.hours import hour_key

    os.environ.update(env)  # the resources read their secrets from the environment
    defs = build_definitions(env)
    started = time.perf_counter()
    result = dg.materialize([defs.get_assets_def("messages")], resources=defs.resources,
                            tags={"dagster/asset_partition_range_start": hour_key(hours[0]),
                                  "dagster/asset_partition_range_end": hour_key(hours[-1])})
    seconds = time.perf_counter() - started
    rows = sum(e.materialization.metadata["rows"].value for e in result.get_asset_materialization_events())
    return {"seconds": seconds, "rows": rows}


def in_fresh_process(hours: list[datetime], env: dict[str, str]) -> dict:
    """`run_hours` in a new process, timed from its start (imports and definitions included, as a
    run worker pays them), with the peak RSS of its process tree."""
    started = time.perf_counter()
    # The settings (the S3 secret key among them) go in the environment, never on the command line.
    proc = psutil.Popen([sys.executable, __file__, "--run", json.dumps([h.isoformat() for h in hours])],
                        env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"a run failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "process_seconds": time.perf_counter() - started, "tree_peak_rss_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share-of-8", type=int, default=1, help="eighths of the benchmark hour in each hour")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_hours([datetime.fromisoformat(h) for h in json.loads(args.run)], dict(os.environ))))
        return

    from notif_export.dev.local_s3 import LocalS3Server, find_free_port
    from notif_export.lib.hours import hour_key

    url = fill(args.pg, 500_000)
    pg = url.replace("+psycopg", "")
    hours = [FIRST + timedelta(hours=i) for i in range(72)]
    for hour in hours:
        copy_hour(pg, HOUR, hour, share_of_8=args.share_of_8)
    processes = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalS3Server(Path(tmp), port=find_free_port()).start(buckets=("bench",))
        try:
            env = {**server.aws_env(), "NOTIF_EXPORT_SOURCE_URL": url, "NOTIF_EXPORT_BUCKET": "bench",
                   "NOTIF_EXPORT_START": hour_key(FIRST - timedelta(days=1))}
            serial = {**env, "NOTIF_EXPORT_EXPORT_PROCESSES": "1"}
            print("24 hours in one run ...", flush=True)
            one_run = in_fresh_process(hours[:24], env)
            print("24 runs of one hour ...", flush=True)
            singles = [in_fresh_process([hour], env) for hour in hours[:24]]
            print("72 hours, one process, then in parallel processes ...", flush=True)
            serial_72 = in_fresh_process(hours, serial)
            parallel_72 = in_fresh_process(hours, env)
        finally:
            server.stop()

    per_hour = one_run["rows"] / 24
    print(f"\nhours of ~{per_hour:,.0f} messages ({args.share_of_8}/8 of the benchmark hour), PostgreSQL -> local "
          f"SeaweedFS, {processes} CPUs; each run a fresh process (imports and definitions included)\n")
    print(f"{'':<58}{'seconds':>9}{'rows/s':>10}{'tree peak RSS MB':>18}")

    def line(label: str, seconds: float, rows: int, peak: float) -> None:
        print(f"{label:<58}{seconds:>9.1f}{rows / seconds:>10,.0f}{peak:>18,.0f}")

    line(f"one run, 24 hours ({processes} export processes)", one_run["process_seconds"], one_run["rows"],
         one_run["tree_peak_rss_mb"])
    line("24 runs of one hour, one after the other", sum(r["process_seconds"] for r in singles),
         sum(r["rows"] for r in singles), max(r["tree_peak_rss_mb"] for r in singles))
    line("one run, 72 hours, 1 export process", serial_72["process_seconds"], serial_72["rows"],
         serial_72["tree_peak_rss_mb"])
    line(f"one run, 72 hours, {processes} export processes", parallel_72["process_seconds"], parallel_72["rows"],
         parallel_72["tree_peak_rss_mb"])
    print(f"\n72 hours in-run (materialize only): 1 process {serial_72['rows'] / serial_72['seconds']:,.0f} rows/s, "
          f"{processes} processes {parallel_72['rows'] / parallel_72['seconds']:,.0f} rows/s")


if __name__ == "__main__":
    main()
