"""The multipart writer against the real local S3 server."""

import os
import threading

from notif_export.lib.s3_upload import PART_SIZE, S3MultipartWriter


def test_large_object_goes_up_in_parts_and_reads_back_equal(s3, bucket):
    data = os.urandom(2 * PART_SIZE + 12345)
    args = {"ServerSideEncryption": "AES256", "StorageClass": "STANDARD_IA", "Metadata": {"row-count": "7"}}
    writer = S3MultipartWriter(s3, bucket, "big.bin", lambda: args)
    for i in range(0, len(data), 1_000_000):
        writer.write(data[i:i + 1_000_000])
    writer.complete()
    obj = s3.get_object(Bucket=bucket, Key="big.bin")
    assert obj["Body"].read() == data
    assert obj["ETag"].strip('"').endswith("-3")  # three parts
    assert (obj["ServerSideEncryption"], obj["StorageClass"], obj["Metadata"]) == ("AES256", "STANDARD_IA", {"row-count": "7"})
    assert writer.sent_args == args


def test_writing_goes_on_while_the_upload_waits_for_its_arguments(s3, bucket):
    """At the first part, `put_args` may have to wait (the export counts the hour then): it runs
    on a part thread, and the caller hands over the next part meanwhile."""
    released = threading.Event()

    def put_args():
        assert released.wait(30), "the caller was kept waiting"
        return {"Metadata": {"row-count": "9"}}

    data = os.urandom(2 * PART_SIZE + 1)
    writer = S3MultipartWriter(s3, bucket, "waits.bin", put_args)
    writer.write(data)  # two parts handed over while the upload cannot be created yet
    released.set()
    writer.complete()
    obj = s3.get_object(Bucket=bucket, Key="waits.bin")
    assert (obj["Body"].read(), obj["Metadata"]) == (data, {"row-count": "9"})


def test_small_object_is_one_put(s3, bucket):
    writer = S3MultipartWriter(s3, bucket, "small.bin", lambda: {"ContentType": "application/vnd.apache.parquet"})
    writer.write(b"PAR1")
    writer.complete()
    obj = s3.get_object(Bucket=bucket, Key="small.bin")
    assert obj["Body"].read() == b"PAR1"
    assert obj["ContentType"] == "application/vnd.apache.parquet"


def test_abort_keeps_the_previous_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="hour.parquet", Body=b"old")
    writer = S3MultipartWriter(s3, bucket, "hour.parquet")
    writer.write(os.urandom(PART_SIZE + 1))  # one part already uploaded
    writer.abort()
    assert s3.get_object(Bucket=bucket, Key="hour.parquet")["Body"].read() == b"old"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_abort_after_complete_leaves_the_object(s3, bucket, monkeypatch):
    """An error after the upload (correcting the metadata, say) aborts the writer: the object
    stays, and no abort of the finished upload is sent (AWS answers it with NoSuchUpload, which
    would hide the first error; the local server accepts it, hence the count of calls)."""
    aborts = []
    monkeypatch.setattr(s3, "abort_multipart_upload", lambda **kwargs: aborts.append(kwargs))
    data = os.urandom(PART_SIZE + 1)
    writer = S3MultipartWriter(s3, bucket, "done.bin")
    writer.write(data)
    writer.complete()
    writer.abort()
    assert aborts == []
    assert s3.get_object(Bucket=bucket, Key="done.bin")["Body"].read() == data


def test_only_a_killed_writers_old_upload_of_the_data_point_is_aborted(s3, bucket):
    from datetime import datetime, timedelta, timezone

    from notif_export.lib.s3_upload import abort_stale_uploads

    killed = s3.create_multipart_upload(Bucket=bucket, Key="year=2026/hour=07/messages.parquet")["UploadId"]
    other = s3.create_multipart_upload(Bucket=bucket, Key="year=2026/hour=07/requests.parquet")["UploadId"]
    messages_only = lambda key: key.endswith("/messages.parquet")  # noqa: E731
    in_flight_cutoff = datetime.now(timezone.utc) - timedelta(minutes=15)  # started after: a live run's
    assert abort_stale_uploads(s3, bucket, "", in_flight_cutoff, messages_only) == 0
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert abort_stale_uploads(s3, bucket, "", later, messages_only) == 1
    left = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert killed not in left and other in left
    s3.abort_multipart_upload(Bucket=bucket, Key="year=2026/hour=07/requests.parquet", UploadId=other)
