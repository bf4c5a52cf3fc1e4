"""Retrying the export step: transient S3 and database failures are retried by the step's
RetryPolicy, with exponential backoff and jitter; any other failure fails the run at once (a
wrong setting or a missing permission would fail the same way again). Run workers that crash
are retried by the instance's `run_retries` (deploy/dagster.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from notif_export.lib.settings import Settings
from notif_export.lib.transient import is_transient


def export_retry_policy(settings: Settings) -> dg.RetryPolicy:
    """Three retries, the first after `NOTIF_EXPORT_RETRY_DELAY_SECONDS`, then doubling: an S3
    throttle or a database failover is usually over within a minute."""
    return dg.RetryPolicy(max_retries=3, delay=settings.retry_delay_seconds, backoff=dg.Backoff.EXPONENTIAL,
                          jitter=dg.Jitter.PLUS_MINUS)


@contextmanager
def retried_if_transient() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
