"""The plain rules behind the analytics: when to rebuild, what dbt is told."""

import json
from pathlib import Path

from notif_export.lib.analytics import dbt_env, ready_sync_ticks
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.settings import Settings


def test_a_tick_is_ready_once_all_its_runs_finished():
    runs = [("t1", 2, "SUCCESS"), ("t1", 2, "FAILURE"), ("t2", 3, "SUCCESS"), ("t2", 3, "STARTED"),
            ("t3", 1, "SUCCESS")]
    # t2 still runs (and one of its runs is not even created): t3 waits behind it.
    assert ready_sync_ticks(runs, after=None) == ("t1", True)
    assert ready_sync_ticks(runs, after="t1") == (None, False)
    runs[3] = ("t2", 3, "SUCCESS")
    assert ready_sync_ticks(runs, after="t1") == (None, False)  # its third run is not created yet
    runs.append(("t2", 3, "CANCELED"))
    assert ready_sync_ticks(runs, after="t1") == ("t3", True)  # several ticks, one build


def test_ticks_whose_runs_all_failed_need_no_build():
    assert ready_sync_ticks([("t1", 1, "FAILURE"), ("t2", 2, "CANCELED"), ("t2", 2, "FAILURE")], None) == ("t2", False)


def test_dbt_reads_the_files_where_the_export_writes_them(tmp_path):
    local = Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
                               "NOTIF_EXPORT_LAYOUT": "per_type", "NOTIF_EXPORT_PREFIX": "suprsend"})
    env = dbt_env(local)
    assert env["NOTIF_EXPORT_DBT_FILES"] == "s3://notif-export/suprsend/{name}/year=*/month=*/day=*/hour=*/{name}.parquet"
    assert (env["NOTIF_EXPORT_DBT_S3_ENDPOINT"], env["NOTIF_EXPORT_DBT_S3_URL_STYLE"],
            env["NOTIF_EXPORT_DBT_S3_USE_SSL"]) == ("127.0.0.1:8333", "path", "false")
    assert Path(env["NOTIF_EXPORT_DUCKDB_PATH"]) == tmp_path / "analytics.duckdb"
    assert env["NOTIF_EXPORT_DBT_DATA_POINTS"] == "requests,workflow_executions,messages"

    aws = Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path), "AWS_REGION": "eu-west-1",
                             "NOTIF_EXPORT_DATA_POINTS": "messages"})
    env = dbt_env(aws)
    assert env["NOTIF_EXPORT_DBT_FILES"] == "s3://notif-export/year=*/month=*/day=*/hour=*/{name}.parquet"
    assert (env["NOTIF_EXPORT_DBT_S3_ENDPOINT"], env["NOTIF_EXPORT_DBT_S3_URL_STYLE"],
            env["NOTIF_EXPORT_DBT_S3_USE_SSL"]) == ("s3.eu-west-1.amazonaws.com", "vhost", "true")
    assert not any(name.startswith("DBT_ENV_SECRET") for name in env)  # secrets only when dbt starts
    assert env["NOTIF_EXPORT_DBT_DATA_POINTS"] == "messages"


def test_dbt_gets_the_contract_columns_for_a_data_point_without_files(tmp_path):
    columns = json.loads(dbt_env(Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path)}))["NOTIF_EXPORT_DBT_COLUMNS"])
    assert {name: list(types) for name, types in columns.items()} == {
        name: dp.columns for name, dp in DATA_POINTS.items()}
    assert columns["messages"]["message_seen_at"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["requests"]["distinct_id_list"] == "VARCHAR[]"
    assert columns["requests"]["executions"] == "STRUCT(distinct_id VARCHAR, exec_id VARCHAR, workflow_slug VARCHAR)[]"
