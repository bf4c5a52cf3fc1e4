"""Which failures are worth retrying: the S3 service or the database being briefly unavailable
(5xx, throttling, timeouts, refused or cut connections), as opposed to a wrong setting, a missing
permission or a bad schema, which fail the same way every time."""

from __future__ import annotations

import adbc_driver_manager
import sqlalchemy as sa
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from notif_export.lib.source import SourceUnreachable

TRANSIENT_S3_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                      "ServiceUnavailable", "RequestTimeTooSkewed"}
TRANSIENT_TYPES = (
    SourceUnreachable, sa.exc.OperationalError, sa.exc.DisconnectionError, sa.exc.InterfaceError,
    adbc_driver_manager.OperationalError, adbc_driver_manager.InternalError,
    BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError,
)


class HourExportFailed(RuntimeError):
    """An hour's export failed in a worker process (`export_pool`): what failed, and whether it
    is transient, judged there (the exception chain that decides it does not cross processes)."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient

    def __reduce__(self):
        return type(self), (str(self), self.transient)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a transient failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HourExportFailed):
            return exc.transient
        if isinstance(exc, TRANSIENT_TYPES):
            return True
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return status >= 500 or error.get("Code") in TRANSIENT_S3_CODES
        exc = exc.__cause__ or exc.__context__
    return False
