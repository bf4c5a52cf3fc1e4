"""The CPUs the export's worker processes are counted from: the container's limit, not the host's."""

import os

import pytest

from notif_export.lib.settings import Settings
from notif_export.lib.workers import usable_cpus


@pytest.mark.parametrize("cpu_max, limit", [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1)])
def test_a_cgroup_cpu_limit_bounds_the_count(tmp_path, cpu_max, limit):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    assert usable_cpus(path) == min(limit, len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("cpu_max", ["max 100000", "not a limit", None])
def test_without_a_limit_the_cpus_the_process_may_run_on(tmp_path, cpu_max):
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert usable_cpus(path) == len(os.sched_getaffinity(0))


def test_the_export_processes_default_to_the_usable_cpus():
    assert Settings.from_env({}).export_processes == usable_cpus()
    assert Settings.from_env({"NOTIF_EXPORT_EXPORT_PROCESSES": "3"}).export_processes == 3


def test_the_intake_runs_a_process_per_usable_cpu_on_postgresql_and_one_on_sqlite():
    postgresql = {"NOTIF_EXPORT_SOURCE_URL": "postgresql+psycopg://127.0.0.1/source"}
    assert Settings.from_env(postgresql).intake_processes == min(usable_cpus(), 4)
    assert Settings.from_env({**postgresql, "NOTIF_EXPORT_INTAKE_PROCESSES": "3"}).intake_processes == 3
    assert Settings.from_env({}).intake_processes == 1
