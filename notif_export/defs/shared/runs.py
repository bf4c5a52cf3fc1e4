"""Run tags and job names the areas agree on, and Dagster's run statuses in the groups of
`notif_export.lib.run_status`."""

import dagster as dg

from notif_export.lib import run_status

JSON_JOB_NAME = "sync_json_objects"  # the JSON objects assets; the sync selects one data point's
RECONCILE_CHECK_NAME = "bucket_matches_source"
SYNC_RUN_TAG = "notif_export/sync_run"
# Every run a tick requests carries the tick and how many runs it requested, so the analytics
# sensor can tell when all of a tick's runs have finished.
SYNC_TICK_TAG = "notif_export/sync_tick"
SYNC_TICK_RUNS_TAG = "notif_export/sync_tick_runs"
DATA_POINT_TAG = "notif_export/data_point"
HOURS_TAG = "notif_export/hours"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # run monitoring fails a run that runs longer (seconds)

# Dagster concurrency pools; their limits are the instance's (`dagster instance concurrency set
# POOL LIMIT`, README "Production deployment"), and deploy/dagster.yaml holds queued runs until
# their pool has a free slot. Unlimited while no limit is set.
SOURCE_POOL = "source_database"  # everything that reads the source (a replica in production)
ANALYTICS_POOL = "analytics_duckdb"  # the dbt build: a DuckDB file has a single writer

FAILED = [dg.DagsterRunStatus(name) for name in run_status.FAILED]
QUEUED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]  # requested, not launched yet
UNFINISHED = [dg.DagsterRunStatus(name) for name in run_status.UNFINISHED]
