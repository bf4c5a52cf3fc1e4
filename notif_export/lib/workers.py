"""Worker processes of a run (many hours exported at once, a JSON run's PUTs split): no import
here of the export stack, which each worker loads only if it needs it."""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


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
