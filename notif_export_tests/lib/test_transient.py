import adbc_driver_manager
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from notif_export.lib.source import SourceError, SourceUnreachable
from notif_export.lib.transient import is_transient


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", 503), client_error("InternalError", 500), client_error("RequestTimeout", 400),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ReadTimeoutError(endpoint_url="x"),
    SourceUnreachable("cannot connect"), sa.exc.OperationalError("select", {}, Exception("server closed")),
    adbc_driver_manager.OperationalError("connection lost", status_code=adbc_driver_manager.AdbcStatusCode.IO),
    ConnectionResetError(),
])
def test_transient_failures(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    client_error("AccessDenied", 403), client_error("NoSuchBucket", 404), SourceError("no table messages"),
    ValueError("bad setting"),
])
def test_failures_that_would_repeat(exc):
    assert not is_transient(exc)


def test_a_transient_cause_makes_its_wrapper_transient():
    try:
        try:
            raise client_error("SlowDown", 503)
        except ClientError as cause:
            raise RuntimeError("upload failed") from cause
    except RuntimeError as exc:
        assert is_transient(exc)


@pytest.mark.parametrize("transient", [True, False])
def test_a_worker_processs_failure_keeps_its_verdict_across_processes(transient):
    import pickle

    from notif_export.lib.transient import HourExportFailed

    received = pickle.loads(pickle.dumps(HourExportFailed("messages 2026-01-15 14:00: ClientError: ...", transient)))
    assert is_transient(received) is transient and "messages 2026-01-15 14:00" in str(received)
