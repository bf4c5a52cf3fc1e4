"""Benchmark: the sync sensor's tick, and freshness under live traffic, on PostgreSQL.

tick:      one whole tick (all three data points) after 1,000 messages changed, in a source of
           1 million and of 10 million messages, beside the detection query alone (the floor).
freshness: the real Dagster daemon and the live simulator; rows are updated now and then and the
           delay until their new state is in the bucket is measured.

    .venv/bin/python bench/sync_tick.py tick [--sizes 1000000 10000000]
    .venv/bin/python bench/sync_tick.py freshness [--interval 60] [--samples 5]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from notif_export.dev.local_s3 import LocalS3Server, find_free_port  # noqa: E402
from notif_export.dev.simulator import Simulator, TrafficMix  # noqa: E402
from notif_export.lib.contract import DATA_POINTS, MESSAGES  # noqa: E402
from notif_export.lib.source import SourceDatabase  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED_ROWS = 100_000


def database(name: str, admin: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def grow_messages(url: str, rows: int) -> None:
    """Simulated messages, copied inside PostgreSQL (new keys, earlier hours) up to `rows`."""
    db = SourceDatabase(url.replace("postgresql://", "postgresql+psycopg://"))
    db.init_schema()
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        if have == 0:
            now = datetime.now(timezone.utc) - timedelta(days=1)
            sim = Simulator(db, seed=1, mix=TrafficMix(requests_per_hour=SEED_ROWS / 7 / 24))
            batch = sim.traffic(now - timedelta(hours=24), now, now)
            batch.requests.clear()
            batch.workflow_executions.clear()
            sim.write(batch)
            have = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        cols = [c for c in MESSAGES.columns]
        shifted = {"wf_execution_id": "wf_execution_id || '-c' || g", "created_at": "created_at - g * interval '1 day'",
                   "updated_at": "updated_at - g * interval '1 day'", "message_id": "message_id || '-c' || g",
                   "broadcast_execution_id": "broadcast_execution_id || '-c' || g"}
        select = ", ".join(shifted.get(c, c) for c in cols)
        generation = 1 + conn.execute("SELECT count(*) FROM messages WHERE message_id LIKE '%-c%'").fetchone()[0] // max(SEED_ROWS, 1)
        while have < rows:
            copies = min(20, -(-(rows - have) // SEED_ROWS))
            print(f"  growing messages: {have:,} -> ~{have + copies * SEED_ROWS:,}", flush=True)
            conn.execute(
                f"INSERT INTO messages ({', '.join(cols)}) SELECT {select} FROM "
                f"(SELECT * FROM messages WHERE message_id NOT LIKE '%-c%' LIMIT {SEED_ROWS}) m, "
                f"generate_series({generation}, {generation + copies - 1}) g"
            )
            generation += copies
            have = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        conn.execute("VACUUM ANALYZE messages")
    db.dispose()


def tick_bench(args) -> None:
    import dagster as dg

    from notif_export.definitions import build_definitions

    print(f"{'messages':>12}{'tick ms (median)':>18}{'detection query ms':>20}{'hours':>7}")
    for size in args.sizes:
        url = database(f"notif_export_bench_sync_{size}", args.pg)
        grow_messages(url, size)
        sa_url = url.replace("postgresql://", "postgresql+psycopg://")
        defs = build_definitions({"NOTIF_EXPORT_SOURCE_URL": sa_url, "NOTIF_EXPORT_START": "2020-01-01-00:00"})
        sensor = defs.get_sensor_def("sync")
        ticks, queries, hours = [], [], 0
        with dg.instance_for_test() as instance:
            cursor = None
            for _ in range(args.runs):
                with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources,
                                             definitions=defs) as ctx:
                    cursor = sensor(ctx).cursor  # position at the newest row
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(
                        "UPDATE messages SET updated_at = now(), note = 'bench' WHERE message_id IN "
                        "(SELECT message_id FROM messages TABLESAMPLE SYSTEM (1) WHERE message_id IS NOT NULL LIMIT 1000)")
                    started = time.perf_counter()
                    conn.execute("SELECT created_at, updated_at FROM messages WHERE updated_at > now() - interval '10 minutes'").fetchall()
                    queries.append(time.perf_counter() - started)
                started = time.perf_counter()
                with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources,
                                             definitions=defs) as ctx:
                    result = sensor(ctx)
                ticks.append(time.perf_counter() - started)
                cursor = result.cursor
                hours = sum(len(r.run_config["ops"]["rewrite_dirty_hours"]["config"]["hours"]) for r in result.run_requests or [])
        print(f"{size:>12,}{statistics.median(ticks) * 1000:>18.1f}{statistics.median(queries) * 1000:>20.2f}{hours:>7}", flush=True)


def freshness_bench(args) -> None:
    import boto3  # noqa: F401
    import pyarrow as pa
    import pyarrow.parquet as pq

    url = database("notif_export_bench_live", args.pg)
    with psycopg.connect(url, autocommit=True) as conn:
        for t in DATA_POINTS:
            conn.execute(f"DROP TABLE IF EXISTS {t}")
    sa_url = url.replace("postgresql://", "postgresql+psycopg://")
    db = SourceDatabase(sa_url)
    db.init_schema()
    Simulator(db, seed=3).history(3, datetime.now(timezone.utc))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = LocalS3Server(tmp / "s3", port=find_free_port()).start(buckets=("fresh",))
        (tmp / "home").mkdir()
        env = {**os.environ, **server.aws_env(), "DAGSTER_HOME": str(tmp / "home"), "NOTIF_EXPORT_HOME": str(tmp),
               "NOTIF_EXPORT_SOURCE_URL": sa_url, "NOTIF_EXPORT_BUCKET": "fresh",
               "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS": str(args.interval)}
        procs = [
            subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                             env=env, cwd=REPO, stdout=open(tmp / "daemon.log", "wb"), stderr=subprocess.STDOUT,
                             start_new_session=True),
            subprocess.Popen([sys.executable, "-m", "notif_export.cli", "simulate", "--live", "--rate", "3600"],
                             env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True),
        ]
        s3 = server.client()
        try:
            time.sleep(args.interval + 15)  # first tick: going forward from here
            samples: dict[str, tuple[float, str]] = {}
            rng = random.Random(0)
            for i in range(args.samples):
                marker = uuid.uuid4().hex
                with psycopg.connect(url, autocommit=True) as conn:
                    row = conn.execute("UPDATE messages SET note = %s, updated_at = now() WHERE message_id = "
                                       "(SELECT message_id FROM messages WHERE message_id IS NOT NULL OFFSET %s LIMIT 1) "
                                       "RETURNING created_at", (marker, rng.randrange(1000))).fetchone()
                key = f"year={row[0]:%Y}/month={row[0]:%m}/day={row[0]:%d}/hour={row[0]:%H}/messages.parquet"
                samples[marker] = (time.monotonic(), key)
                time.sleep(args.interval / args.samples)
            delays = {}
            deadline = time.monotonic() + args.interval * 4 + 120
            while len(delays) < len(samples) and time.monotonic() < deadline:
                for marker, (t0, key) in samples.items():
                    if marker in delays:
                        continue
                    try:
                        body = s3.get_object(Bucket="fresh", Key=key)["Body"].read()
                    except Exception:
                        continue
                    if marker in pq.read_table(pa.BufferReader(body), columns=["note"]).column("note").to_pylist():
                        delays[marker] = time.monotonic() - t0
                time.sleep(1)
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)
            server.stop()
    values = sorted(delays.values())
    print(f"interval {args.interval}s, {len(values)}/{len(samples)} updates seen in the bucket: "
          f"median {statistics.median(values):.0f}s, max {max(values):.0f}s" if values else "no update reached the bucket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    tick = sub.add_parser("tick")
    tick.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    tick.add_argument("--runs", type=int, default=5)
    tick.add_argument("--pg", default=ADMIN)
    tick.set_defaults(func=tick_bench)
    fresh = sub.add_parser("freshness")
    fresh.add_argument("--interval", type=int, default=60)
    fresh.add_argument("--samples", type=int, default=5)
    fresh.add_argument("--pg", default=ADMIN)
    fresh.set_defaults(func=freshness_bench)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
