"""The demo: the local S3 server, a SQLite source with simulated history and live traffic, and
Dagster, with a console that says what is happening in a few lines (the full logs go to files
under `$NOTIF_EXPORT_HOME/logs/`).

On its first start the demo backfills every partition through Dagster's GraphQL API, as a user
would from the UI, so the partitions and the marts are complete; the sync then runs by its rules.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from notif_export.dev.local_s3 import LocalS3Server
from notif_export.dev.simulator import Simulator
from notif_export.lib.contract import MESSAGES
from notif_export.lib.dagster_api import (
    CodeLocationError,
    DagsterApiError,
    finished_runs,
    has_backfills,
    launch_backfill,
    location_loaded,
    sensor_has_ticked,
)
from notif_export.lib.hours import describe_hours
from notif_export.lib.run_status import BACKFILL_TAG, SYNC_JOB_NAME
from notif_export.lib.settings import PROJECT_DIR, IntakeSettings, Settings
from notif_export.lib.source import SourceDatabase

STOP_GRACE_SECONDS = 4  # then SIGKILL: Ctrl-C leaves nothing behind within 10 s


class DemoError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S}  {message}", flush=True)


@dataclass
class DagsterProcess:
    """`dagster dev` (webserver, daemon, code server and runs) in its own process group, its
    output in a log file."""

    env: dict[str, str]
    port: int
    log_file: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_DIR / "workspace.yaml"),
                 "-h", "127.0.0.1", "-p", str(self.port)],
                env=self.env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until_ready(self, stopping: Callable[[], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping():
            if not self.running():
                raise DemoError(f"Dagster exited while starting; see {self.log_file}")
            try:
                if location_loaded(self.url):
                    return
            except CodeLocationError:
                raise
            except DagsterApiError:  # not answering yet
                pass
            time.sleep(1)
        if stopping():
            return
        raise DemoError(f"Dagster did not answer on {self.url} within {timeout:.0f}s; see {self.log_file}")

    def request_stop(self) -> None:
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to what is left after the grace period (code
        servers and run workers would otherwise wait for their heartbeat to time out)."""
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(group, signal.SIGKILL)
        self.process.wait()


def _stop_within_grace(process: subprocess.Popen) -> None:
    """Wait for a process already sent SIGTERM; SIGKILL it if it is still there after the grace
    period (the intake service writing to an unreachable database, say)."""
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


@dataclass
class RunReporter:
    """Prints one line per finished run (sync, backfill, analytics build, reconciliation)."""

    url: str
    since: float = field(default_factory=time.time)
    printed: set[str] = field(default_factory=set)

    def report(self, out: Callable[[str], None] = say) -> None:
        runs = finished_runs(self.url, self.since)
        for run in sorted(runs, key=lambda r: r["endTime"] or 0):
            if run["runId"] not in self.printed:
                self.printed.add(run["runId"])
                out(describe_run(run, self.url))
        if runs:
            self.since = max(self.since, max(r["updateTime"] or 0 for r in runs) - 1)


def describe_run(run: dict, url: str) -> str:
    """One line: what the run exported (hours as ranges, rows) or built, and how it ended."""
    tags = {t["key"]: t["value"] for t in run["tags"]}
    seconds = (run["endTime"] or 0) - (run["startTime"] or run["endTime"] or 0)
    outcome = f"{run['status'].lower()} in {seconds:.0f} s"
    hours: dict[str, list[str]] = {}
    rows: dict[str, int] = {}
    for event in run["assetMaterializations"]:
        if event["partition"]:
            name = "/".join(event["assetKey"]["path"])
            hours.setdefault(name, []).append(event["partition"])
            rows[name] = rows.get(name, 0) + sum(e.get("intValue") or 0 for e in event["metadataEntries"]
                                                 if e["label"] == "rows")
    if hours:
        kind = "backfill" if BACKFILL_TAG in tags else "sync" if run["jobName"] == SYNC_JOB_NAME else run["jobName"]
        return "; ".join(f"{kind} {name}: {describe_hours(hours[name])}; {rows[name]:,} rows"
                         for name in sorted(hours)) + f" ({outcome})"
    if run["assetMaterializations"]:
        return f"{run['jobName']}: {len(run['assetMaterializations'])} models built ({outcome})"
    return f"{run['jobName']}: {outcome} ({url}/runs/{run['runId']})"


def intake_keys_file(home: Path) -> Path:
    return home / "intake" / "keys.env"


def demo_intake_keys(settings: Settings, port: int) -> tuple[dict[str, str], bool]:
    """The intake service's keys as environment variables, and whether the demo generated them:
    the settings' own when NOTIF_EXPORT_INTAKE_WORKSPACE_KEY is set, else keys generated once for
    the local demo and kept (owner-only) in `$NOTIF_EXPORT_HOME/intake/keys.env`, which
    `notif-export intake env` prints. The file also holds the service's URL, for clients."""
    url = f"http://127.0.0.1:{port}/"
    if settings.intake.workspace_key:
        return {"NOTIF_EXPORT_INTAKE_URL": url}, False
    path = intake_keys_file(settings.home)
    keys = dict(line.split("=", 1) for line in path.read_text().split()) if path.exists() else {
        IntakeSettings.VARIABLES["workspace_key"]: f"ws_demo_{secrets.token_hex(12)}",
        IntakeSettings.VARIABLES["workspace_secret"]: secrets.token_urlsafe(24),
        IntakeSettings.VARIABLES["api_key"]: secrets.token_urlsafe(24),
    }
    keys["NOTIF_EXPORT_INTAKE_URL"] = url
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
    return keys, True


def wait_for_intake(url: str, process: subprocess.Popen, log_file: Path, stopping: Callable[[], bool],
                    timeout: float = 60) -> None:
    """Until the service itself answers (its OpenAPI document), not merely something on the port,
    or Ctrl-C."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stopping():
            return
        if process.poll() is not None:
            raise DemoError(f"the intake service exited while starting (is its port taken? --intake-port); "
                            f"see {log_file}")
        try:
            with urllib.request.urlopen(f"{url}openapi.json", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise DemoError(f"the intake service did not answer on {url} within {timeout:.0f}s; see {log_file}")


def run_demo(settings: Settings, ui_port: int, s3_port: int, seed: int, history_hours: float,
             intake_port: int = 8080) -> None:
    home = settings.home
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    say(f"notif_export demo; local state in {home}; Ctrl-C stops everything")
    server = LocalS3Server(home / "s3", port=s3_port).start(buckets=(settings.destination.bucket,))
    say(f"local S3 server on {server.endpoint_url}, bucket {settings.destination.bucket!r}")
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    # The documented instance (run retries, run monitoring, no telemetry), kept up to date.
    shutil.copyfile(PROJECT_DIR / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, **server.aws_env(), "NOTIF_EXPORT_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    source = SourceDatabase(settings.source_url)
    simulator: subprocess.Popen | None = None
    intake: subprocess.Popen | None = None
    dagster = DagsterProcess(env, ui_port, logs / "dagster.log")
    stopping = [False]

    def stop(signum, _frame):
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        source.init_schema()
        if source.max_updated_at(MESSAGES) is None:  # a new source: give it some history
            counts = Simulator(source, seed=seed).history(history_hours, datetime.now(timezone.utc))
            say(f"simulated {history_hours:g} h of history in {source.display_url}: "
                + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
        keys, generated = demo_intake_keys(settings, intake_port)
        intake_env = {**env, **keys}
        with open(logs / "intake.log", "ab") as intake_log:
            intake = subprocess.Popen(
                [sys.executable, "-m", "notif_export.cli", "intake", "serve", "--port", str(intake_port)],
                env=intake_env, stdout=intake_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        wait_for_intake(keys["NOTIF_EXPORT_INTAKE_URL"], intake, logs / "intake.log", lambda: stopping[0])
        if stopping[0]:
            return
        say(f"intake service (the trigger API) on {keys['NOTIF_EXPORT_INTAKE_URL']} (log: {logs / 'intake.log'})")
        if generated:  # keys made for this local demo only; shown here and nowhere else
            say("  its keys, generated for this demo: " + ", ".join(
                f"{name}={keys[name]}" for name in IntakeSettings.VARIABLES.values()))
            say('  in another shell: eval "$(notif-export intake env)"')
        with open(logs / "simulator.log", "ab") as sim_log:
            simulator = subprocess.Popen(
                [sys.executable, "-m", "notif_export.cli", "simulate", "--live", "--seed", str(seed + 1),
                 "--intake", keys["NOTIF_EXPORT_INTAKE_URL"]],
                env=intake_env, stdout=sim_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        say(f"live traffic started, through the intake service with the platform's SDK (log: {logs / 'simulator.log'})")
        say(f"Dagster starting (log: {dagster.log_file}) ...")
        started = time.monotonic()
        dagster.start()
        dagster.wait_until_ready(lambda: stopping[0])
        if stopping[0]:
            return
        say(f"Dagster UI: {dagster.url} (ready after {time.monotonic() - started:.0f} s)")
        reporter = RunReporter(dagster.url)
        if not has_backfills(dagster.url):
            # After the sync's first tick, so the backfill's cut and the sync's start leave no gap.
            deadline = time.monotonic() + 120
            while not stopping[0] and not sensor_has_ticked(dagster.url, "sync") and time.monotonic() < deadline:
                _sleep_unless(stopping, 1)
            if stopping[0]:
                return
            launch_backfill(dagster.url, settings.data_points, None, "History of the demo")
            say(f"first start: backfilling every hour since {settings.start:%Y-%m-%d %H:%M} UTC of "
                f"{', '.join(settings.data_points)} ({dagster.url}/overview/backfills)")
        while not stopping[0] and dagster.running() and simulator.poll() is None and intake.poll() is None:
            try:
                reporter.report()
            except DagsterApiError as exc:
                say(f"(could not read the runs: {exc})")
            _sleep_unless(stopping, 2)
        if not stopping[0]:
            raise DemoError(f"a demo process exited; see {logs}")
    finally:
        say("stopping ...")
        # Every process is asked at once, then each gets what is left of a few seconds.
        if simulator is not None and simulator.poll() is None:
            simulator.terminate()
        if intake is not None and intake.poll() is None:
            intake.terminate()
        dagster.request_stop()
        server.request_stop()
        dagster.stop()
        for process in (simulator, intake):
            if process is not None:
                _stop_within_grace(process)
        server.stop(timeout=STOP_GRACE_SECONDS)
        source.dispose()
        say("stopped")


def _sleep_unless(stopping: list[bool], seconds: float) -> None:
    """Sleep in short steps: a signal handler that only sets a flag does not cut a sleep short."""
    deadline = time.monotonic() + seconds
    while not stopping[0] and time.monotonic() < deadline:
        time.sleep(0.2)
