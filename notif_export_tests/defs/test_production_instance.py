"""The production instance with the real daemon: Dagster's storage on PostgreSQL (dagster-postgres),
the queued run coordinator and the concurrency pools of deploy/dagster.yaml. A sync tick's runs
are queued together; no more of them run at once than the source pool's limit, all succeed, and
the bucket then equals the source (`notif-export verify`)."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from notif_export.defs.shared.runs import SOURCE_POOL
from notif_export.dev.dagster_instance import sync_cursor
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.hours import hour_key
from notif_export.lib.run_status import SYNC_JOB_NAME
from notif_export.lib.settings import PROJECT_DIR
from notif_export.lib.source import SourceDatabase
from notif_export_tests.conftest import NOW, fresh_pg_database, list_keys
from notif_export_tests.defs.test_sync_daemon import (
    start_daemon,
    stop_daemon,
    wait_for,
)
from notif_export_tests.defs.test_sync_sensor import touch

SOURCE_POOL_LIMIT = 2  # below the three runs a tick requests when every data point changed


@pytest.fixture
def instance_db_url(pg_admin_url) -> str:
    """A throwaway database for Dagster's own storage."""
    yield from fresh_pg_database(pg_admin_url)


def production_instance(home: Path, storage_url: str) -> None:
    """deploy/dagster.yaml with its storage on PostgreSQL, as the README's production section has it."""
    instance = yaml.safe_load((PROJECT_DIR / "deploy" / "dagster.yaml").read_text())
    # dagster-postgres's statements need psycopg2, not SQLAlchemy's default PostgreSQL driver.
    instance["storage"] = {"postgres": {"postgres_url": storage_url.replace("postgresql://", "postgresql+psycopg2://")}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))


def most_at_once(records: list[dg.RunRecord]) -> int:
    """The most runs in progress at the same moment (a run ending as another starts is not overlap)."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_sync_runs_wait_for_the_source_pool_on_a_postgres_instance(tmp_path, pg_url, instance_db_url, s3, bucket,
                                                                  aws_env):
    db = SourceDatabase(pg_url)
    db.init_schema()
    Simulator(db, seed=5, mix=TrafficMix(requests_per_hour=120)).history(8, NOW)
    home = tmp_path / "dagster_home"
    home.mkdir()
    production_instance(home, instance_db_url)
    env = {**os.environ, **aws_env, "DAGSTER_HOME": str(home), "NOTIF_EXPORT_HOME": str(tmp_path),
           "NOTIF_EXPORT_SOURCE_URL": pg_url, "NOTIF_EXPORT_BUCKET": bucket,
           "NOTIF_EXPORT_START": hour_key(NOW - timedelta(days=1)),
           "NOTIF_EXPORT_SYNC_INTERVAL_SECONDS": "2"}
    # The pool's limit is kept in the instance's storage, set with Dagster's own command.
    subprocess.run([str(Path(sys.executable).parent / "dagster"), "instance", "concurrency", "set", SOURCE_POOL,
                    str(SOURCE_POOL_LIMIT)], env=env, check=True, capture_output=True)
    log = tmp_path / "daemon.log"
    hours = [(NOW - timedelta(hours=h)).replace(minute=0) for h in range(6, 0, -1)]
    dest = Destination(bucket=bucket)
    expected = sorted(dest.object_key(dp, hour) for dp in DATA_POINTS for hour in hours)

    def sync_runs() -> list[dg.RunRecord]:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return list(instance.get_run_records(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME)))

    daemon = start_daemon(env, log)
    try:
        wait_for(lambda: sync_cursor(home), 120, "first sync tick", log, daemon)
        for name in DATA_POINTS:  # every data point changes: a run each
            touch(db, name, hours, NOW + timedelta(minutes=1))
        wait_for(lambda: list_keys(s3, bucket) == expected, 180, "the changed hours in the bucket", log, daemon)
        records = wait_for(lambda: (runs := sync_runs()) and all(r.dagster_run.is_finished for r in runs) and runs,
                           120, "the sync runs finished", log, daemon)
    finally:
        stop_daemon(daemon)
        db.dispose()
    assert len(records) >= len(DATA_POINTS)
    failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    assert not failed, run_failures(home, failed)
    assert most_at_once(records) <= SOURCE_POOL_LIMIT
    verified = subprocess.run(
        [sys.executable, "-m", "notif_export.cli", "verify", "--from", hour_key(hours[0]), "--to", hour_key(hours[-1])],
        env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def run_failures(home: Path, run_ids: list[str]) -> str:
    """Why the runs failed, from their event logs: the test's message when one does."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return "\n".join(f"{run_id}: {event.message}" for run_id in run_ids
                         for event in instance.all_logs(run_id)
                         if event.dagster_event is not None and event.dagster_event.is_failure)
