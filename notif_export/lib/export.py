"""Rewrite one hour of one data point: stream the source's rows into a Parquet object in S3.

Reading, Parquet encoding and uploading overlap: a thread reads record batches from the source
while this thread encodes them, and the multipart writer uploads finished parts in the
background. Nothing holds the whole hour, so memory is bounded by a few batches and parts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from notif_export.lib.contract import DataPoint
from notif_export.lib.s3_upload import S3MultipartWriter
from notif_export.lib.source import SourceDatabase, hour_bounds


@dataclass(frozen=True)
class Destination:
    """Where and how files are written. One value, passed around: several can coexist."""

    bucket: str
    prefix: str = ""
    layout: str = "shared"
    compression: str = "snappy"

    def object_key(self, data_point: str, hour: datetime) -> str:
        start, _ = hour_bounds(hour)
        partition = f"year={start:%Y}/month={start:%m}/day={start:%d}/hour={start:%H}"
        folder = f"{data_point}/{partition}" if self.layout == "per_type" else partition
        return f"{self.prefix}{folder}/{data_point}.parquet"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class HourExport:
    data_point: str
    hour: datetime
    uri: str
    rows: int
    bytes: int
    max_updated_at: datetime | None

    @property
    def written(self) -> bool:
        return self.rows > 0


def rewrite_hour(
    source: SourceDatabase,
    s3: Any,
    destination: Destination,
    dp: DataPoint,
    hour: datetime,
    put_args: dict[str, Any] | None = None,
) -> HourExport:
    """Replace the hour's object with the latest state of every row created in that hour.

    An hour without rows has no object: an existing one is deleted. If anything fails, the
    upload is aborted and the previous object stays as it was.
    """
    start, _ = hour_bounds(hour)
    key = destination.object_key(dp.name, start)
    sink = S3MultipartWriter(s3, destination.bucket, key, put_args)
    writer: pq.ParquetWriter | None = None
    rows = 0
    max_updated: pa.Scalar | None = None
    # PostgreSQL rows cost CPU to convert: two readers keep both cores busy.
    readers = source.read_hour(dp, start, slices=READERS if source.is_postgresql else 1)
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
                )
            writer.write_batch(batch)
            rows += batch.num_rows
            batch_max = pc.max(batch.column("updated_at"))
            if max_updated is None or (batch_max.is_valid and batch_max.value > max_updated.value):
                max_updated = batch_max
        if writer is not None:
            writer.close()
            sink.complete()
        else:
            sink.abort()
            s3.delete_object(Bucket=destination.bucket, Key=key)
    except BaseException:
        sink.abort()
        raise
    return HourExport(
        data_point=dp.name,
        hour=start,
        uri=destination.uri(key),
        rows=rows,
        bytes=sink.bytes_written,
        max_updated_at=max_updated.as_py() if max_updated is not None and max_updated.is_valid else None,
    )


def dictionary_columns(sample: pa.RecordBatch, max_distinct_share: float = 0.2) -> list[str]:
    """String columns worth dictionary encoding, judged on the first batch: statuses, channels,
    slugs repeat; ids and addresses do not, and trying a dictionary on them only costs time."""
    return [
        f.name
        for f in sample.schema
        if pa.types.is_string(f.type)
        and pc.count_distinct(sample.column(f.name)).as_py() <= max_distinct_share * sample.num_rows
    ]


READERS = 2
_DONE = object()


def _prefetched(readers: list[Iterator[pa.RecordBatch]], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Run every reader on its own thread, each up to `depth` batches ahead; yield their
    batches reader after reader, so the output order is the readers' order."""
    feeds = [_Feed(reader, depth) for reader in readers]
    try:
        for feed in feeds:
            yield from feed
    finally:
        for feed in feeds:
            feed.stop()


class _Feed:
    def __init__(self, batches: Iterator[pa.RecordBatch], depth: int):
        self._handoff: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(batches,), name="source-reader", daemon=True)
        self._thread.start()

    def _produce(self, batches: Iterator[pa.RecordBatch]) -> None:
        handoff, stop = self._handoff, self._stop
        item: Any = _DONE
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handoff.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        finally:
            close = getattr(batches, "close", None)
            if close:
                close()
        if not stop.is_set():
            handoff.put(item)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._handoff.get(timeout=0.1)
            except queue.Empty:
                pass
