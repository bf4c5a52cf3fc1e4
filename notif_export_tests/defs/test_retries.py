"""The export step's retries: a transient failure is left to the RetryPolicy, any other one
fails the run at once (retrying a wrong setting only delays the message)."""

import dagster as dg
import pytest
from botocore.exceptions import ClientError

from notif_export.defs.shared.retries import EXPORT_RETRY_POLICY, retried_if_transient


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


@pytest.mark.parametrize("field", ["max_retries", "delay", "backoff"])
def test_the_export_steps_policy_backs_off(field):
    assert getattr(EXPORT_RETRY_POLICY, field)
