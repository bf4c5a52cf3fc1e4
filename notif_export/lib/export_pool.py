"""Rewriting many hours at once, each hour in a worker process.

One process writes about one hour at a time at the speed of one core and a half (the source's
reader threads, the Parquet encoder and the upload overlap, but Python's lock and the encoder
bound it); a sync tick or a backfill with many dirty hours uses every core by exporting several
hours in parallel processes. Memory is bounded by the number of processes: each holds one hour
in flight, itself streamed in bounded memory (`export.rewrite_hour`).

A worker's failure keeps the serial path's meaning: the hours already written stay written, the
hours not started are not started, and the failure is raised in the caller with its message and
whether it is worth retrying (its exception chain, which decides that, stays in the worker).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.destination import Destination
from notif_export.lib.export import HourExport, rewrite_hour
from notif_export.lib.source import SourceDatabase
from notif_export.lib.transient import HourExportFailed, is_transient
from notif_export.lib.workers import die_with_parent, worker_pool

# Starting the worker processes takes about 2 seconds (3.5 CPU-seconds: each imports the export
# stack), in which one process exports about 300,000 rows: hours holding fewer rows than this go
# faster in turn in the run's own process (a sync tick of a small workspace, a few quiet hours).
MIN_ROWS_FOR_PROCESSES = 200_000


def worth_processes(source: SourceDatabase, dp: DataPoint, hours: Sequence[datetime],
                    created_before: datetime | None, processes: int) -> bool:
    """Whether the hours hold enough rows to pay for starting `processes` worker processes."""
    return processes > 1 and len(hours) > 1 and source.rows_created_in(
        dp, hours, created_before, at_most=MIN_ROWS_FOR_PROCESSES) >= MIN_ROWS_FOR_PROCESSES


@dataclass(frozen=True)
class ExportTarget:
    """What a worker process needs to rewrite hours: plain, picklable values."""

    source_url: str = field(repr=False)  # may hold the database's password
    access: BucketAccess
    destination: Destination


def rewrite_hours_in_processes(target: ExportTarget, data_point: str, hours: Sequence[datetime], processes: int,
                               run_id: str | None, created_before: datetime | None
                               ) -> Iterator[tuple[datetime, HourExport]]:
    """Rewrite the hours in `processes` worker processes; yield each hour and its result as it
    completes. On a failure, the hours not started are cancelled, those being written finish, and
    the first failure is raised as `HourExportFailed`."""
    with worker_pool(min(processes, len(hours)), _start_worker, (target,)) as pool:
        pending: dict[Future, datetime] = {
            pool.submit(_rewrite, data_point, hour, run_id, created_before): hour for hour in hours
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if f.exception() is not None), None)
                for future in done:
                    hour = pending.pop(future)
                    if future.exception() is None:
                        yield hour, future.result()
                if failed is not None:
                    raise failed.exception()
        finally:
            for future in pending:
                future.cancel()


_worker: dict[str, Any] = {}


def _start_worker(target: ExportTarget) -> None:
    die_with_parent()
    _worker.update(source=SourceDatabase(target.source_url), s3=target.access.s3_client(),
                   destination=target.destination)


def _rewrite(data_point: str, hour: datetime, run_id: str | None, created_before: datetime | None) -> HourExport:
    try:
        return rewrite_hour(_worker["source"], _worker["s3"], _worker["destination"], DATA_POINTS[data_point], hour,
                            run_id=run_id, created_before=created_before)
    except Exception as exc:
        raise HourExportFailed(f"{data_point} {hour:%Y-%m-%d %H}:00: {type(exc).__name__}: {exc}",
                               transient=is_transient(exc)) from None
