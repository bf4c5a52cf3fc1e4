"""A write-only file object that streams into an S3 multipart upload.

Parts are uploaded on background threads while the caller keeps writing, so encoding and upload
overlap and memory stays at a few parts. The object appears only when `close()` completes the
upload, atomically replacing any previous version; on error `abort()` leaves the old object as
it was.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

PART_SIZE = 8 * 1024 * 1024  # S3 needs at least 5 MiB per part (but the last)
MAX_PARTS_IN_FLIGHT = 2


class S3MultipartWriter(io.RawIOBase):
    def __init__(self, client: Any, bucket: str, key: str,
                 put_args: Callable[[], dict[str, Any]] | None = None, part_size: int | None = None):
        """`put_args` gives the object's write arguments (encryption, storage class, metadata);
        it is called once, when the object is created: at the first part of a multipart upload
        (on a part thread, so the caller goes on writing if it has to wait), or at `complete()`
        for a single PUT. `sent_args` then holds what it returned."""
        self._client = client
        self._bucket = bucket
        self._key = key
        self._put_args = put_args or dict
        self.sent_args: dict[str, Any] | None = None
        self._part_size = part_size or PART_SIZE
        self._buffer = bytearray()
        self._parts: list[Future] = []
        self._created: Future | None = None  # the multipart upload's id
        self._pool = ThreadPoolExecutor(MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.bytes_written

    def write(self, data) -> int:
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])
            self._send_part(part)
            del self._buffer[: self._part_size]
        return len(data)

    def _send_part(self, body: bytes) -> None:
        if self._created is None:
            self._created = self._pool.submit(self._create)
        # Bound memory: wait for the oldest part when too many are in flight.
        in_flight = [f for f in self._parts if not f.done()]
        if len(in_flight) >= MAX_PARTS_IN_FLIGHT:
            in_flight[0].result()
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._upload_part, number, body))

    def _create(self) -> str:
        self.sent_args = self._put_args()
        return self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key, **self.sent_args)["UploadId"]

    def _upload_part(self, number: int, body: bytes) -> dict:
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._created.result(), PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def complete(self) -> None:
        """Finish the object: one PUT when it is small, else the last part and the completion."""
        try:
            if self._created is None:
                self.sent_args = self._put_args()
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), **self.sent_args
                )
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                parts = [f.result() for f in self._parts]
                self._client.complete_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._created.result(),
                    MultipartUpload={"Parts": parts},
                )
                self._created = None  # complete: nothing left for `abort()` to drop
        except BaseException:
            self.abort()
            raise
        finally:
            self._buffer.clear()
            self._pool.shutdown(wait=True)
        super().close()

    def abort(self) -> None:
        """Drop the upload; the previous object, if any, stays as it was."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        created, self._created = self._created, None
        if created is not None and not created.cancelled() and created.exception() is None:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=created.result())
        self._buffer.clear()
        super().close()

    def close(self) -> None:
        # pyarrow closes its sink when the Parquet footer is written; completing is explicit.
        pass


def abort_stale_uploads(client: Any, bucket: str, prefix: str, started_before: datetime,
                        key_filter: Callable[[str], bool]) -> int:
    """Abort the multipart uploads under `prefix` started before `started_before` whose key
    passes `key_filter`: left by a writer killed mid-upload (no live run takes that long), they
    are invisible but S3 keeps their parts, and bills them, until aborted. Returns how many."""
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            if upload["Initiated"] < started_before and key_filter(upload["Key"]):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
    return aborted
