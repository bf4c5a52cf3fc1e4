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

from notif_export.lib.hours import hour_key
from notif_export.lib.destination import Destination
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.source import SourceDatabase
from notif_export_tests.conftest import NOW, file_rows, list_keys, read_object, source_rows
from notif_export_tests.defs.test_sync_sensor import touch

REPO = Path(__file__).resolve().parents[2]


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops its children
        )


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


def sensor_cursor(home: Path) -> str | None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for state in instance.all_instigator_state():
            if state.name == "sync" and state.instigator_data and state.instigator_data.cursor:
                return state.instigator_data.cursor
    return None


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
        wait_for(lambda: sensor_cursor(home), 120, "first sync tick", log, daemon)
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
