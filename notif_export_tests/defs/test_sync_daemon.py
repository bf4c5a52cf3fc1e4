"""The sync sensor run by the real Dagster daemon, stopped and restarted: the changes made while it
was down reach the bucket on its first tick back, and only the changed hours are written."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from notif_export.defs.shared.runs import SYNC_TICK_RUNS_TAG, SYNC_TICK_TAG
from notif_export.dev.dagster_instance import create_instance_storage, dagster_command, sync_cursor
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.destination import Destination
from notif_export.lib.hours import hour_key
from notif_export.lib.source import SourceDatabase
from notif_export_tests.conftest import (
    NOW,
    file_rows,
    list_keys,
    read_object,
    source_rows,
)
from notif_export_tests.defs.test_sync_sensor import touch

REPO = Path(__file__).resolve().parents[2]


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    create_instance_storage(env["DAGSTER_HOME"])
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops its children
        )


def stop_sensor(env: dict[str, str], name: str) -> None:
    create_instance_storage(env["DAGSTER_HOME"])
    stopped = dagster_command(env, "sensor", "stop", name)
    assert stopped.returncode == 0, stopped.stderr


def stop_daemon(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(check, timeout: float, what: str, log: Path, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"no {what} (daemon exit code {proc.poll()}); daemon log:\n{log.read_text()[-4000:]}")


def test_daemon_syncs_changes_made_while_it_was_stopped(tmp_path, s3, bucket, aws_env):
    db = SourceDatabase(f"sqlite:///{tmp_path / 'source.db'}")
    db.init_schema()
    Simulator(db, seed=4, mix=TrafficMix(requests_per_hour=120)).history(8, NOW)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, **aws_env, "DAGSTER_HOME": str(home), "NOTIF_EXPORT_HOME": str(tmp_path),
           "NOTIF_EXPORT_SOURCE_URL": db.url.render_as_string(), "NOTIF_EXPORT_BUCKET": bucket,
           "NOTIF_EXPORT_START": hour_key(NOW - timedelta(days=1)), "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS": "2"}
    log = tmp_path / "daemon.log"

    daemon = start_daemon(env, log)
    try:
        wait_for(lambda: sync_cursor(home), 120, "first sync tick", log, daemon)
    finally:
        stop_daemon(daemon)
    assert list_keys(s3, bucket) == []  # first setup exports nothing

    changed = [(NOW - timedelta(hours=h)).replace(minute=0) for h in (7, 3)]
    touch(db, "messages", changed, NOW + timedelta(minutes=1))  # while the daemon is down

    daemon = start_daemon(env, log)
    try:
        dest = Destination(bucket=bucket)
        expected = sorted(dest.object_key("messages", h) for h in changed)
        wait_for(lambda: list_keys(s3, bucket) == expected, 180, "changed hours in the bucket", log, daemon)
    finally:
        stop_daemon(daemon)
    for hour in changed:
        assert file_rows(read_object(s3, bucket, dest.object_key("messages", hour)), "messages") == \
            source_rows(db, "messages", hour)
    db.dispose()


def orphans(s3, bucket: str, db: SourceDatabase, finished_runs: set[str]) -> dict[str, int]:
    """Rows in the files that runs of finished ticks wrote whose parent is not in the bucket
    although the parent's hour was exported: executions and messages without their request,
    messages without their execution. Files of runs whose tick is still running are skipped."""
    dest = Destination(bucket=bucket)
    keys = list_keys(s3, bucket)
    tables = {}
    for key in keys:
        obj = s3.get_object(Bucket=bucket, Key=key)
        table = pq.read_table(pa.BufferReader(obj["Body"].read()))
        tables[key] = (table, obj["Metadata"].get("dagster-run-id") in finished_runs)

    def values(dp: str, name: str, written_by_finished_tick: bool = False) -> set:
        return {v for key, (t, finished) in tables.items() if key.endswith(f"/{dp}.parquet")
                and (finished or not written_by_finished_tick) for v in t.column(name).to_pylist() if v is not None}

    def parent_hour_exported(table: str, key_column: str, key: str) -> bool:
        with db.connect() as conn:
            created = conn.execute(sa.text(f"SELECT min(created_at) FROM {table} WHERE {key_column} = :k"),
                                   {"k": key}).scalar()
        return created is not None and dest.object_key(table, created) in tables

    found = {}
    for child, parent, child_column, parent_column in [
            ("workflow_executions", "requests", "idempotency_key", "idempotency_key"),
            ("messages", "requests", "idempotency_key", "idempotency_key"),
            ("messages", "workflow_executions", "wf_execution_id", "execution_id")]:
        missing = values(child, child_column, written_by_finished_tick=True) - values(parent, parent_column)
        found[f"{child} without their {parent}"] = sum(parent_hour_exported(parent, parent_column, k) for k in missing)
    found["child rows checked"] = len(values("messages", "message_id", written_by_finished_tick=True))
    return found


def test_no_orphans_in_the_hours_the_sync_wrote_under_live_traffic(tmp_path, pg_url, s3, bucket, aws_env):
    """One cut per tick: every run of a tick exports the source as of the same moment, so a
    child row written by a tick always has its parent in the bucket, whatever the traffic. Measured
    while the traffic flows, after each of two ticks of the real daemon."""
    db = SourceDatabase(pg_url)
    db.init_schema()
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, **aws_env, "DAGSTER_HOME": str(home), "NOTIF_EXPORT_HOME": str(tmp_path),
           "NOTIF_EXPORT_SOURCE_URL": pg_url, "NOTIF_EXPORT_BUCKET": bucket,
           "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS": "5"}
    with open(tmp_path / "simulator.log", "ab") as out:
        simulator = subprocess.Popen(
            [sys.executable, "-m", "notif_export.cli", "simulate", "--live", "--seed", "9", "--rate", "7200",
             "--tick", "0.5", "--history", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log = tmp_path / "daemon.log"
    # The dbt builds after each tick are not what this test is about, and on 2 cores they slow
    # every run of the sync.
    stop_sensor(env, "analytics_after_sync")
    daemon = start_daemon(env, log)

    def finished_ticks() -> dict[str, set[str]]:
        """Ticks whose runs all succeeded: their run ids."""
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="sync_dirty_hours"))
        ticks: dict[str, list] = {}
        for run in runs:
            ticks.setdefault(run.tags[SYNC_TICK_TAG], []).append(run)
        return {t: {r.run_id for r in rs} for t, rs in ticks.items()
                if len(rs) == int(rs[0].tags[SYNC_TICK_RUNS_TAG]) and all(r.status == dg.DagsterRunStatus.SUCCESS for r in rs)}

    measured: list[dict[str, int]] = []
    try:
        seen: set[str] = set()
        # Two ticks at least, and until one has written messages (the first ticks may hold only
        # requests and executions whose messages are not created yet); five at most.
        while len(measured) < 2 or (measured[-1]["child rows checked"] == 0 and len(measured) < 5):
            ticks = wait_for(lambda: (t := finished_ticks()) and set(t) - seen and t, 180,
                             "a new sync tick whose runs all succeeded", log, daemon)
            seen |= set(ticks)
            measured.append(orphans(s3, bucket, db, set().union(*ticks.values())))
    finally:
        stop_daemon(daemon)
        os.killpg(simulator.pid, signal.SIGTERM)
        simulator.wait(30)
        db.dispose()
    assert measured[-1]["child rows checked"] > 0
    for found in measured:
        found.pop("child rows checked")
        assert found == {"workflow_executions without their requests": 0, "messages without their requests": 0,
                         "messages without their workflow_executions": 0}
