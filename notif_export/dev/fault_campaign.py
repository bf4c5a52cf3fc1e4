"""The fault campaign: the real Dagster daemon syncing live simulated traffic from PostgreSQL to
the local S3 server, both behind fault-injecting proxies, while seeded random faults are
injected; then the faults stop, the system settles, and `verify` judges every hour touched (0
rows missing, stale or extra), and no incomplete multipart upload may be left.

Used by `bench/fault_campaign.py` (long) and the test suite (short).
"""

from __future__ import annotations

import base64
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import sqlalchemy as sa
import yaml
from botocore.exceptions import ClientError

from notif_export.dev.dagster_instance import create_instance_storage, dagster_command, sync_cursor
from notif_export.dev.fault_proxy import FaultProxy
from notif_export.dev.local_s3 import LocalS3Server
from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import DATA_POINTS, REQUESTS
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.hours import hour_key, hour_start
from notif_export.lib.settings import PROJECT_DIR
from notif_export.lib.source import TABLES, SourceDatabase
from notif_export.lib.verify import Verification, verify

FAULT_KINDS = ("s3_500", "s3_503", "s3_reset", "s3_stall", "db_refused", "late_commit_inside_overlap",
               "late_commit_beyond_overlap", "run_killed_mid_upload", "sensor_stopped_and_started",
               "data_point_disabled_and_enabled", "daemon_killed_and_restarted")
# Each holds on for a minute or more: the outage, the transaction held past the overlap, the
# requests stalled past the client's timeout.
LASTING_FAULTS = ("db_refused", "late_commit_beyond_overlap", "s3_stall")
SYNC_INTERVAL = 10
OVERLAP = 20
RUN_TIMEOUT = 60
DB_OUTAGE_SECONDS = 60
MAX_FAULT_GAP = 25  # seconds between faults, on average, in a long campaign
BIG_ROWS, BIG_ROW_BYTES = 12, 1 << 20  # an hour of requests past the multipart threshold


@dataclass
class CampaignResult:
    seed: int
    fault_seconds: float
    faults: Counter = field(default_factory=Counter)
    proxy_faults: Counter = field(default_factory=Counter)
    source_rows: dict[str, int] = field(default_factory=dict)
    rows_written: int = 0
    hours_rewritten: int = 0
    runs: Counter = field(default_factory=Counter)
    runs_retried: int = 0
    drift: dict[str, dict[str, int]] = field(default_factory=dict)
    settle_seconds: float | None = None
    incomplete_uploads: int = -1
    late_commit_arrivals: list[float] = field(default_factory=list)  # beyond the overlap: commit -> bucket, s

    @property
    def drift_rows(self) -> int:
        return sum(n for totals in self.drift.values() for k, n in totals.items() if k.startswith("rows"))

    def table(self) -> str:
        lines = [f"fault campaign, seed {self.seed}: {self.fault_seconds:.0f} s of faults",
                 "| fault | injected |", "|---|---|"]
        lines += [f"| {kind} | {self.faults[kind]} |" for kind in FAULT_KINDS]
        lines += [f"| (S3 proxy: requests answered 500/503, reset or stalled) | "
                  f"{', '.join(f'{k} {n}' for k, n in sorted(self.proxy_faults.items())) or 0} |",
                  "", "| figure | value |", "|---|---|",
                  f"| rows in the source | {sum(self.source_rows.values()):,} "
                  f"({', '.join(f'{k} {n:,}' for k, n in self.source_rows.items())}) |",
                  f"| rows written (all rewrites) | {self.rows_written:,} |",
                  f"| hours rewritten | {self.hours_rewritten:,} |",
                  f"| runs | {', '.join(f'{k.lower()} {n}' for k, n in sorted(self.runs.items()))} |",
                  f"| runs retried (run_retries) | {self.runs_retried} |",
                  f"| commits beyond the overlap: in the bucket after (the reconciliation) | "
                  f"{', '.join(f'{s:.0f} s' for s in self.late_commit_arrivals) or '-'} |",
                  f"| drift at the end (rows missing + stale + extra) | {self.drift_rows} |",
                  f"| time to settle after the faults (verify clean) | "
                  f"{'did not settle' if self.settle_seconds is None else f'{self.settle_seconds:.0f} s'} |",
                  f"| incomplete multipart uploads left | {self.incomplete_uploads} |"]
        return "\n".join(lines)


class Campaign:
    def __init__(self, workdir: Path, pg_url: str, s3_server: LocalS3Server, bucket: str, seed: int,
                 log: Callable[[str], None] = print):
        self.workdir, self.pg_url, self.s3_server, self.bucket, self.seed = workdir, pg_url, s3_server, bucket, seed
        self.log = log
        self.random = random.Random(seed)
        self.home = workdir / "dagster_home"
        self.s3_proxy = FaultProxy(s3_server.port, http=True, seed=seed, stall_seconds=65)
        pg = sa.engine.make_url(pg_url)
        self.pg_proxy = FaultProxy(pg.port or 5432, http=False, seed=seed)
        self.source = SourceDatabase(pg_url)
        self.daemon: subprocess.Popen | None = None
        self.daemon_lock = threading.Lock()
        self.groups: list[int] = []  # process groups to stop at the end (killed daemons' children)
        self.simulator: subprocess.Popen | None = None
        self.threads: list[threading.Thread] = []
        self.result = CampaignResult(seed, 0)
        self.start_hour = hour_start(datetime.now(timezone.utc)) - timedelta(hours=1)

    # Set-up.
    def env(self, data_points: tuple[str, ...] = tuple(DATA_POINTS)) -> dict[str, str]:
        creds = self.s3_server.credentials()
        proxied = sa.engine.make_url(self.pg_url).set(host="127.0.0.1", port=self.pg_proxy.port)
        return {**os.environ, "DAGSTER_HOME": str(self.home), "NOTIF_EXPORT_HOME": str(self.workdir),
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_proxy.port}", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": creds["access_key"], "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
                "NOTIF_EXPORT_SOURCE_URL": proxied.render_as_string(hide_password=False),
                "NOTIF_EXPORT_BUCKET": self.bucket, "NOTIF_EXPORT_START": hour_key(self.start_hour),
                "NOTIF_EXPORT_DATA_POINTS": ",".join(data_points),
                "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS": str(SYNC_INTERVAL),
                "NOTIF_EXPORT_SYNC_OVERLAP_SECONDS": str(OVERLAP),
                "NOTIF_EXPORT_SYNC_RUN_TIMEOUT_SECONDS": str(RUN_TIMEOUT),
                "NOTIF_EXPORT_RECONCILE_INTERVAL_MINUTES": "1", "NOTIF_EXPORT_RECONCILE_WINDOW_HOURS": "3"}

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load((PROJECT_DIR / "deploy" / "dagster.yaml").read_text())
        instance["run_monitoring"]["poll_interval_seconds"] = 5  # the documented instance, quicker to notice
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance))
        create_instance_storage(self.home)
        self.s3_proxy.start()
        self.pg_proxy.start()
        self.source.init_schema()

    def start_daemon(self, data_points: tuple[str, ...] = tuple(DATA_POINTS)) -> None:
        with open(self.workdir / "daemon.log", "ab") as out:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_DIR / "workspace.yaml")],
                env=self.env(data_points), cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.groups.append(self.daemon.pid)

    def restart_daemon(self, data_points: tuple[str, ...], kill: bool) -> None:
        with self.daemon_lock:
            self._restart_daemon(data_points, kill)

    def _restart_daemon(self, data_points: tuple[str, ...], kill: bool) -> None:
        if kill:  # the daemon alone: its code server and runs live on, as after a crash
            os.kill(self.daemon.pid, signal.SIGKILL)
        else:
            os.killpg(self.daemon.pid, signal.SIGTERM)
        self.daemon.wait()
        time.sleep(3)
        self.start_daemon(data_points)

    def start_traffic(self) -> None:
        with open(self.workdir / "simulator.log", "ab") as out:
            self.simulator = subprocess.Popen(
                [sys.executable, "-m", "notif_export.cli", "simulate", "--live", "--seed", str(self.seed),
                 "--rate", "3600", "--tick", "0.5"],
                env={**self.env(), "NOTIF_EXPORT_SOURCE_URL": self.pg_url}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def add_big_requests(self) -> None:
        """Requests whose payloads take their hour's file past the multipart threshold, so kills
        and resets hit multipart uploads too."""
        table = TABLES[REQUESTS.name]
        with self.source.connect() as conn:
            deadline = time.monotonic() + 60
            while (row := conn.execute(sa.select(table).limit(1)).mappings().first()) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no traffic after 60 s; see {self.workdir / 'simulator.log'}")
                conn.rollback()
                time.sleep(1)
            now = datetime.now(timezone.utc)
            conn.execute(table.insert(), [
                {**row, "idempotency_key": f"big-{self.seed}-{i}", "created_at": now, "updated_at": now,
                 "payload": '{"blob": "' + base64.b64encode(self.random.randbytes(BIG_ROW_BYTES)).decode() + '"}'}
                for i in range(BIG_ROWS)])
            conn.commit()

    def wait_for_first_sync_tick(self, timeout: float = 180) -> None:
        """Until the sync has ticked once: a data point's sync starts from its first tick (forward
        only), so faults before it (a database outage first of all) would leave it nothing to do."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sync_cursor(self.home):
                return
            time.sleep(1)
        raise RuntimeError(f"the sync did not tick within {timeout:.0f} s; see {self.workdir / 'daemon.log'}")

    # Faults.
    def later(self, seconds: float, action: Callable[[], None]) -> None:
        def run() -> None:
            time.sleep(seconds)
            action()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def inject(self, kind: str) -> None:
        self.result.faults[kind] += 1
        self.log(f"{datetime.now():%H:%M:%S} fault: {kind}")
        if kind.startswith("s3_"):
            self.s3_proxy.inject(kind, 0.1 if kind == "s3_stall" else 0.3)
            self.later(15, lambda: self.s3_proxy.inject(kind, 0))
        elif kind == "db_refused":
            self.pg_proxy.refuse(True)
            self.later(DB_OUTAGE_SECONDS, lambda: self.pg_proxy.refuse(False))
        elif kind.startswith("late_commit"):
            beyond = kind.endswith("beyond_overlap")
            self.later(0, lambda: self.late_commit(OVERLAP * 3 if beyond else OVERLAP / 2, watch=beyond))
        elif kind == "run_killed_mid_upload":
            self.later(0, self.kill_runs_mid_upload)
        elif kind == "sensor_stopped_and_started":
            self.dagster_cli("sensor", "stop", "sync")
            self.later(20, lambda: self.dagster_cli("sensor", "start", "sync"))
        elif kind == "data_point_disabled_and_enabled":
            self.restart_daemon(("requests", "messages"), kill=False)
            self.later(20, lambda: self.restart_daemon(tuple(DATA_POINTS), kill=False))
        elif kind == "daemon_killed_and_restarted":
            self.restart_daemon(tuple(DATA_POINTS), kill=True)

    def late_commit(self, hold: float, watch: bool) -> None:
        """A long transaction: rows stamped when it began (`now()` in PostgreSQL), committed
        `hold` seconds later, after ticks that have moved past their `updated_at`. With `watch`,
        how long until they are in the bucket (beyond the overlap: the reconciliation's doing)."""
        table = TABLES[REQUESTS.name]
        columns = ", ".join(f'"{c.name}"' for c in table.c)
        values = ", ".join("'late-' || md5(random()::text)" if c.name == "idempotency_key"
                           else "now()" if c.name in ("created_at", "updated_at") else f'"{c.name}"'
                           for c in table.c)
        with self.source.engine.connect() as conn:
            inserted = conn.execute(sa.text(
                f'INSERT INTO "requests" ({columns}) SELECT {values} FROM "requests" '
                "WHERE idempotency_key NOT LIKE 'big-%' ORDER BY created_at DESC LIMIT 5 "
                "RETURNING idempotency_key, created_at")).all()
            time.sleep(hold)
            conn.commit()
        if watch and inserted:
            self.watch_arrival({key for key, _ in inserted}, inserted[0][1], time.monotonic())

    def watch_arrival(self, keys: set[str], created_at: datetime, committed: float) -> None:
        object_key = Destination(bucket=self.bucket).object_key(REQUESTS.name, created_at)
        while time.monotonic() - committed < 900:
            try:
                body = self.s3_server.client().get_object(Bucket=self.bucket, Key=object_key)["Body"].read()
                if keys <= set(pq.read_table(io.BytesIO(body), columns=["idempotency_key"]).column(0).to_pylist()):
                    self.result.late_commit_arrivals.append(time.monotonic() - committed)
                    return
            except ClientError:  # no file yet
                pass
            time.sleep(5)

    def kill_runs_mid_upload(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.s3_proxy.uploads_in_flight:
                killed = [pid for pid in self.run_workers() if _kill(pid)]
                if killed:
                    self.log(f"  SIGKILL to run workers {killed} during an upload")
                    return
            time.sleep(0.05)

    def run_workers(self) -> list[int]:
        listing = subprocess.run(["ps", "axeww", "-o", "pid=,args="], capture_output=True, text=True).stdout
        return [int(line.split()[0]) for line in listing.splitlines()
                if "api execute_run" in line and f"DAGSTER_HOME={self.home} " in line + " "]

    def dagster_cli(self, *args: str) -> None:
        """Dagster's own command line (a stop of a stopped sensor fails harmlessly: said, not raised)."""
        done = dagster_command(self.env(), *args)
        if done.returncode:
            self.log(f"  dagster {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")

    # Judging.
    def verify_all(self, now: datetime) -> dict[str, Verification]:
        access = BucketAccess(region_name="us-east-1", endpoint_url=self.s3_server.endpoint_url,
                              aws_access_key_id=self.s3_server.credentials()["access_key"],
                              aws_secret_access_key=self.s3_server.credentials()["secret_key"])
        end = hour_start(now) + timedelta(hours=1)
        with duckdb.connect() as con:
            connect_to_bucket(con, access)
            return {name: verify(self.source, self.s3_server.client(), Destination(bucket=self.bucket), dp,
                                 self.start_hour, end, con, settled_before=now)
                    for name, dp in DATA_POINTS.items()}

    def incomplete_uploads(self) -> int:
        return len(self.s3_server.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))

    def collect(self) -> None:
        with self.source.connect() as conn:
            self.result.source_rows = {name: conn.execute(sa.select(sa.func.count()).select_from(TABLES[name]))
                                       .scalar_one() for name in DATA_POINTS}
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            runs = instance.get_runs()
            self.result.runs = Counter(run.status.value for run in runs)
            self.result.runs_retried = sum("dagster/retry_number" in run.tags for run in runs)
            for name in DATA_POINTS:
                cursor = None
                while True:
                    page = instance.fetch_materializations(dg.AssetKey(name), limit=10_000, cursor=cursor)
                    self.result.hours_rewritten += len(page.records)
                    for record in page.records:
                        rows = record.asset_materialization.metadata.get("rows")
                        self.result.rows_written += rows.value if rows is not None else 0
                    if not page.has_more:
                        break
                    cursor = page.cursor

    def stop_all(self) -> None:
        self.s3_proxy.clear()
        self.pg_proxy.refuse(False)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.run_workers():
            _kill(pid)
        if self.simulator is not None and self.simulator.poll() is None:
            os.killpg(self.simulator.pid, signal.SIGKILL)
        self.s3_proxy.stop()
        self.pg_proxy.stop()
        self.source.dispose()

    def run(self, fault_seconds: float, settle_timeout: float) -> CampaignResult:
        self.log(f"fault campaign: seed {self.seed} (replay with --seed {self.seed}), {fault_seconds:.0f} s of faults")
        self.prepare()
        try:
            self.start_daemon()
            self.start_traffic()
            self.add_big_requests()
            self.wait_for_first_sync_tick()
            started = time.monotonic()
            # Every kind once, in a seeded order, then seeded random kinds until the time is up.
            # The kinds that last a minute or more start first: the others run meanwhile instead
            # of the campaign waiting for them at the end.
            plan = list(FAULT_KINDS)
            self.random.shuffle(plan)
            plan.sort(key=lambda kind: kind not in LASTING_FAULTS)
            gap = min(fault_seconds / (len(plan) + 1), MAX_FAULT_GAP)
            while plan or time.monotonic() - started < fault_seconds:
                time.sleep(gap * self.random.uniform(0.6, 1.4))
                self.inject(plan.pop(0) if plan else self.random.choice(FAULT_KINDS))
            self.result.fault_seconds = time.monotonic() - started
            self.log(f"{datetime.now():%H:%M:%S} faults stop; traffic stops; settling")
            os.killpg(self.simulator.pid, signal.SIGTERM)
            self.simulator.wait(30)
            for thread in self.threads:  # late commits, delayed restarts, outages ending
                thread.join()
            self.s3_proxy.clear()
            settle_started = time.monotonic()
            while time.monotonic() - settle_started < settle_timeout:
                found = self.verify_all(datetime.now(timezone.utc))
                self.result.drift = {name: v.totals() for name, v in found.items()}
                if self.result.drift_rows == 0 and not any(v.drift for v in found.values()):
                    self.result.settle_seconds = time.monotonic() - settle_started
                    break
                time.sleep(10)
            self.log(f"{datetime.now():%H:%M:%S} settled after {self.result.settle_seconds} s; "
                     "waiting for the reconciliation to abort killed uploads")
            deadline = time.monotonic() + RUN_TIMEOUT + 120
            while (left := self.incomplete_uploads()) and time.monotonic() < deadline:
                time.sleep(10)
            self.result.incomplete_uploads = left
            self.result.proxy_faults = self.s3_proxy.injected + self.pg_proxy.injected
            self.collect()
        finally:
            self.stop_all()
        return self.result


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
