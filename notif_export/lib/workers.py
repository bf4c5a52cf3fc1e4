"""Worker processes of a run (many hours exported at once, a JSON run's PUTs split): no import
here of the export stack, which each worker loads only if it needs it."""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: those it may run on, and no more than its container's CPU
    limit. `os.cpu_count()` counts the host's: a pod limited to 2 CPUs on a 64-core node would
    start 64 export processes of up to ~300 MB each."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):  # no cgroup v2 limit to read: the CPUs above
        pass
    return cpus


def worker_pool(processes: int, initializer: Callable[..., None], initargs: tuple) -> ProcessPoolExecutor:
    """Worker processes of a run. spawn: a fork of a process running threads (Dagster's, the S3
    client's) can deadlock. The initializer should call `die_with_parent` first."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A worker never outlives its run, even a killed one."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
