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
    try:
        for batch in _prefetched(source.read_hour(dp, start)):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(
                    sink, dp.schema, compression=destination.compression.upper()
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


_DONE = object()


def _prefetched(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Iterate `batches` on a background thread, `depth` batches ahead of the consumer."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
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

    thread = threading.Thread(target=produce, name="source-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass
