"""Dagster run statuses by name, grouped as the sync and the analytics rules use them, and the
names of runs the rules and the GraphQL clients look for. Plain strings
(`DagsterRunStatus.value`), so the rules and the command line stay free of Dagster."""

SUCCEEDED = "SUCCESS"
FAILED = ("FAILURE", "CANCELED")
FINISHED = (SUCCEEDED, *FAILED)
UNFINISHED = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")

SYNC_JOB_NAME = "sync_dirty_hours"
BACKFILL_TAG = "dagster/backfill"  # set by Dagster on every run of a backfill: its id
