"""Dagster run statuses by name, grouped as the sync and the analytics rules use them. Plain
strings (`DagsterRunStatus.value`), so the rules stay free of Dagster."""

SUCCEEDED = "SUCCESS"
FAILED = ("FAILURE", "CANCELED")
FINISHED = (SUCCEEDED, *FAILED)
UNFINISHED = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
