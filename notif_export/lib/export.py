"""Rewrite one hour of one data point: stream the source's rows into a Parquet object in S3.

Reading, Parquet encoding and uploading overlap: two threads read record batches from the
source at once (each a part of the hour) while this thread encodes them, and the multipart
writer uploads finished parts in the background. Nothing holds the whole hour: memory is bounded
by a few batches and parts, whatever the hour's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from notif_export.lib.bad_rows import BadRows
from notif_export.lib.contract import SCHEMA_VERSION, DataPoint
from notif_export.lib.destination import Destination
from notif_export.lib.hours import EPOCH, hour_start
from notif_export.lib.s3_upload import S3MultipartWriter
from notif_export.lib.source import SourceDatabase


@dataclass(frozen=True)
class HourExport:
    data_point: str
    hour: datetime
    uri: str
    rows: int
    bytes: int
    max_updated_at: datetime | None
    warning: str | None = None
    bad_rows: dict[str, int] = field(default_factory=dict)  # kind -> rows (see bad_rows.py)

    @property
    def written(self) -> bool:
        return self.rows > 0


def rewrite_hour(
    source: SourceDatabase,
    s3: Any,
    destination: Destination,
    dp: DataPoint,
    hour: datetime,
    run_id: str | None = None,
    created_before: datetime | None = None,
) -> HourExport:
    """Replace the hour's object with the latest state of every row created in that hour (and
    before `created_before`: the cutoff that the runs of one sync tick or backfill share, so
    that a child row in one file always has its parent in another).

    An hour without rows has no object: an existing one is deleted (when the bucket policy does
    not allow deleting, the old object stays and the result carries a warning). If anything
    fails, the upload is aborted and the previous object stays as it was.
    """
    start = hour_start(hour)
    key = destination.object_key(dp.name, start)
    stream = _StreamStats()

    def put_args() -> dict[str, Any]:
        # A file of one part is put once the hour is read: the stream's own figures. A multipart
        # upload is created at the first part, before that: its metadata comes from a count of the
        # hour (on the upload's thread, while the encoder goes on), checked against the stream
        # once it is complete. So only an hour of more than one part costs a count.
        rows, newest = (stream.rows, stream.newest) if stream.done else source.hour_stats(dp, start, created_before)
        return destination.put_args(object_metadata(dp, start, rows, newest, run_id))

    sink = S3MultipartWriter(s3, destination.bucket, key, put_args)
    writer: pq.ParquetWriter | None = None
    warning = None
    # PostgreSQL rows cost CPU to convert: two readers keep both cores busy.
    bad_rows = BadRows()
    readers = source.read_hour(dp, start, bad_rows, slices=READERS if source.is_postgresql else 1,
                               created_before=created_before)
    try:
        for batch in _prefetched(readers):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(
                    sink,
                    dp.schema,
                    compression=destination.compression.upper(),
                    use_dictionary=dictionary_columns(batch),
                    write_statistics=statistics_columns(dp.schema),
                )
            writer.write_batch(batch)
            stream.add(batch)
        stream.done = True
        if writer is not None:
            writer.close()
            sink.complete()
            final = put_args()
            if sink.sent_args != final:
                # Rows changed between the count and the read: correct the metadata in place.
                s3.copy_object(Bucket=destination.bucket, Key=key, MetadataDirective="REPLACE",
                               CopySource={"Bucket": destination.bucket, "Key": key}, **final)
        else:
            sink.abort()
            warning = _delete_if_allowed(s3, destination.bucket, key)
    except BaseException:
        sink.abort()  # waits for its threads: no query of this hour outlives it
        raise
    return HourExport(
        data_point=dp.name,
        hour=start,
        uri=destination.uri(key),
        rows=stream.rows,
        bytes=sink.bytes_written,
        max_updated_at=stream.newest,
        warning=warning,
        bad_rows=bad_rows.by_hour().get(start, {}),
    )


class _StreamStats:
    def __init__(self) -> None:
        self.rows = 0
        self._newest_us: int | None = None  # updated_at is in microseconds (the contract's type)
        self.done = False

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        # Compared as integers: pyarrow imports pandas (0.3 s, holding the GIL, so the readers
        # stall too) the first time it turns a timezone-aware timestamp into a datetime.
        batch_max = pc.max(batch.column("updated_at"))
        if batch_max.is_valid and (self._newest_us is None or batch_max.value > self._newest_us):
            self._newest_us = batch_max.value

    @property
    def newest(self) -> datetime | None:
        return None if self._newest_us is None else EPOCH + timedelta(microseconds=self._newest_us)


def object_metadata(dp: DataPoint, hour: datetime, rows: int, newest: datetime | None,
                    run_id: str | None) -> dict[str, str]:
    """The object's x-amz-meta-* headers: what it holds, so it can be checked without reading it."""
    metadata = {
        "data-point": dp.name,
        "partition-hour": hour.strftime("%Y-%m-%dT%H:00:00Z"),
        "row-count": str(rows),
        "max-updated-at": newest.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if newest else "",
        "schema-version": SCHEMA_VERSION,
    }
    if run_id:
        metadata["dagster-run-id"] = run_id
    return metadata


def _delete_if_allowed(s3: Any, bucket: str, key: str) -> str | None:
    """Delete an emptied hour's object; the one permission the export can do without."""
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "403"):
            raise
        return (f"s3://{bucket}/{key} should be deleted (its hour has no rows any more) but the bucket "
                "policy does not allow s3:DeleteObject; it was left in place. Allow s3:DeleteObject "
                "on the prefix, or delete it by hand.")
    return None


def dictionary_columns(sample: pa.RecordBatch, max_distinct_share: float = 0.2) -> list[str]:
    """String columns worth dictionary encoding, judged on the first batch: statuses, channels,
    slugs repeat; ids and addresses do not, and trying a dictionary on them only costs time."""
    return [
        f.name
        for f in sample.schema
        if pa.types.is_string(f.type)
        and pc.count_distinct(sample.column(f.name)).as_py() <= max_distinct_share * sample.num_rows
    ]


def statistics_columns(schema: pa.Schema) -> list[str]:
    """The columns whose min/max go into each row group: the times. An hour's rows arrive about
    in created order, so a row group spans a narrow slice of time that a reader's filter can skip;
    the string columns' values (ids, statuses, tenants, texts) are spread over every row group,
    where min/max skip nothing and cost about a third of the encoding."""
    return [f.name for f in schema if pa.types.is_timestamp(f.type)]


READERS = 2
_DONE = object()


def _prefetched(readers: list[Iterator[pa.RecordBatch]], depth: int = 3) -> Iterator[pa.RecordBatch]:
    """Run every reader on its own thread, all at once, and yield their batches as they come, at
    most `depth` batches ahead of the consumer (the memory bound). The readers' rows are not
    interleaved within a batch, only the batches; the hour's query has no order anyway."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    threads = [threading.Thread(target=_produce, args=(reader, handoff, stop), name="source-reader", daemon=True)
               for reader in readers]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            item = handoff.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
                del item  # release the batch as soon as it is written
    finally:
        stop.set()
        while any(thread.is_alive() for thread in threads):
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass


def _produce(batches: Iterator[pa.RecordBatch], handoff: queue.Queue, stop: threading.Event) -> None:
    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    item: Any = _DONE
    try:
        for batch in batches:
            if not put(batch):
                return
    except BaseException as exc:  # handed to the consumer, raised there
        item = exc
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()
    put(item)
