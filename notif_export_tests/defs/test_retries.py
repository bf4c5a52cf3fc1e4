"""The export step's retries: a transient failure is left to the RetryPolicy, any other one
fails the run at once (retrying a wrong setting only delays the message)."""

import dagster as dg
from botocore.exceptions import ClientError

from notif_export.definitions import build_definitions
from notif_export.defs.shared.retries import retried_if_transient


def run_op_failing_with(exc: Exception, attempts: list[int]) -> dg.ExecuteInProcessResult:
    @dg.op(retry_policy=dg.RetryPolicy(max_retries=2))  # no delay: the test's
    def step(context: dg.OpExecutionContext) -> None:
        attempts.append(context.retry_number)
        with retried_if_transient():
            if context.retry_number == 0:
                raise exc

    @dg.job
    def job() -> None:
        step()

    return job.execute_in_process(raise_on_error=False)


def test_a_transient_failure_is_retried_and_then_succeeds():
    attempts: list[int] = []
    slow_down = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
    assert run_op_failing_with(slow_down, attempts).success
    assert attempts == [0, 1]


def test_any_other_failure_is_not_retried():
    attempts: list[int] = []
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    result = run_op_failing_with(denied, attempts)
    assert not result.success and attempts == [0]
    assert "AccessDenied" in result.get_step_failure_events()[0].event_specific_data.error.message


def test_the_export_step_and_the_sync_step_back_off_from_the_configured_delay():
    defs = build_definitions({"NOTIF_EXPORT_BUCKET": "exports", "NOTIF_EXPORT_RETRY_DELAY_SECONDS": "7"})
    export_step = defs.get_assets_def("messages").op.retry_policy
    for policy in (export_step, defs.resolve_job_def("sync_dirty_hours").op_retry_policy):
        assert (policy.max_retries, policy.delay, policy.backoff) == (3, 7, dg.Backoff.EXPONENTIAL)
