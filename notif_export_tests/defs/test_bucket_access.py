"""Bucket access through real Dagster runs: encryption, storage class and metadata on every
object, the connection check job, an assumed role, and secrets kept out of every event and log."""

import json
import urllib.request
from datetime import timedelta

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.dev.simulator import Simulator
from notif_export.lib.analytics import DBT_PROJECT_DIR
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import (
    NOW,
    MotoServer,
    export_env,
    list_keys,
    read_object,
)

HOURS = [(NOW - timedelta(hours=2)).replace(minute=0) + timedelta(hours=i) for i in range(3)]


@pytest.fixture
def traffic(source):
    Simulator(source, seed=13).history(2.5, NOW)
    return source


def run_everything(env: dict[str, str], instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """An export of the hours, the bucket check and (with dbt) the analytics build, as runs."""
    defs = build_definitions(env)
    exports = [defs.get_assets_def(name) for name in ("requests", "workflow_executions", "messages")]
    dg.materialize(exports, resources=defs.resources, instance=instance,
                   tags={"dagster/asset_partition_range_start": f"{HOURS[0]:%Y-%m-%d-%H:00}",
                         "dagster/asset_partition_range_end": f"{HOURS[-1]:%Y-%m-%d-%H:00}"})
    defs.resolve_job_def("check_bucket_access").execute_in_process(instance=instance, raise_on_error=False)
    return instance.get_runs()


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_every_object_is_encrypted_with_its_storage_class_and_metadata(traffic, source_url, bucket, aws_env, s3):
    env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_STORAGE_CLASS="STANDARD_IA")
    with dg.instance_for_test() as instance:
        (run,) = [r for r in run_everything(env, instance) if r.job_name != "check_bucket_access"]
    keys = list_keys(s3, bucket)
    assert len(keys) == 9
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        table = read_object(s3, bucket, key)
        newest = pc.max(table.column("updated_at")).as_py()
        assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")
        assert head["Metadata"] == {
            "data-point": key.rsplit("/", 1)[1].removesuffix(".parquet"),
            "partition-hour": key.split("year=")[1][:4] + "-" + key.split("month=")[1][:2] + "-"
            + key.split("day=")[1][:2] + "T" + key.split("hour=")[1][:2] + ":00:00Z",
            "row-count": str(table.num_rows),
            "max-updated-at": newest.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "schema-version": "1",
            "dagster-run-id": run.run_id,
        }


def test_the_check_job_reports_the_checklist(bucket, aws_env, tmp_path):
    env = {**aws_env, "NOTIF_EXPORT_HOME": str(tmp_path), "NOTIF_EXPORT_BUCKET": bucket}
    job = build_definitions(env).resolve_job_def("check_bucket_access")
    passed = job.execute_in_process()
    table = [e for e in passed.all_events if e.event_type_value == "STEP_OUTPUT"][0] \
        .event_specific_data.metadata["checklist"].value
    assert "| s3:PutObject | PASS |" in table and "| public access blocked | SKIP |" in table

    missing = build_definitions({**env, "NOTIF_EXPORT_BUCKET": bucket + "-gone"}).resolve_job_def("check_bucket_access")
    failed = missing.execute_in_process(raise_on_error=False)
    assert not failed.success
    failure = failed.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "bucket exists: create it first, or fix NOTIF_EXPORT_BUCKET" in failure.description


def everything_written(instance: dg.DagsterInstance, since: float) -> str:
    """Every event of every run (messages, metadata, config, tags) and every dbt log and artifact
    written since `since`: all that a user of the UI, the logs or the files could see."""
    parts = []
    for run in instance.get_runs():
        parts += [json.dumps(run.run_config, default=str), json.dumps(run.tags)]
        parts += [repr(entry) for entry in instance.all_logs(run.run_id)]
    for path in [*(DBT_PROJECT_DIR / "logs").rglob("*"), *(DBT_PROJECT_DIR / "target").rglob("*")]:
        if path.is_file() and path.stat().st_mtime >= since:
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_the_secret_key_appears_in_no_event_log_or_dbt_file(traffic, source_url, bucket, aws_env, tmp_path):
    import time

    since = time.time() - 1
    # the per_type layout here (the other dbt tests read the shared one)
    env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_HOME=str(tmp_path), NOTIF_EXPORT_LAYOUT="per_type")
    with dg.instance_for_test() as instance:
        run_everything(env, instance)
        defs = build_definitions(env)
        built = dg.materialize([defs.get_assets_def(dg.AssetKey(["analytics", "messages"]))],
                               resources=defs.resources, instance=instance)
        assert built.success  # dbt read the bucket with the key
        written = everything_written(instance, since)
    with duckdb.connect(str(tmp_path / "analytics.duckdb"), read_only=True) as con:
        counts = {n: con.execute(f"select count(*) from main.{n}").fetchone()[0] for n in DATA_POINTS}
    with traffic.connect() as conn:
        assert counts == {n: conn.execute(sa.select(sa.func.count()).select_from(TABLES[n])).scalar()
                          for n in DATA_POINTS}
    assert f"s3://{bucket}/" in written and "delivery_hourly" in written  # the search sees runs and dbt...
    assert aws_env["AWS_SECRET_ACCESS_KEY"] not in written  # ...and never the secret


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_an_export_through_an_assumed_role(traffic, source_url, tmp_path, monkeypatch):
    import time

    since = time.time() - 1
    moto = MotoServer()
    try:
        iam = moto.client("iam")
        role = iam.create_role(RoleName="suprsend-export", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        customer = moto.client("s3")
        customer.create_bucket(Bucket="customer-bucket")
        customer.put_public_access_block(Bucket="customer-bucket", PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        env = {"NOTIF_EXPORT_HOME": str(tmp_path), "NOTIF_EXPORT_SOURCE_URL": source_url,
               "NOTIF_EXPORT_BUCKET": "customer-bucket", "NOTIF_EXPORT_START": f"{NOW - timedelta(days=1):%Y-%m-%d}",
               "AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_STS": moto.url, "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": MotoServer.ADMIN["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": MotoServer.ADMIN["aws_secret_access_key"],
               "NOTIF_EXPORT_ROLE_ARN": role, "NOTIF_EXPORT_EXTERNAL_ID": "ext-7f3a9c-secret"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with dg.instance_for_test() as instance:
            runs = run_everything(env, instance)
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            written = everything_written(instance, since)
        assert len(list_keys(moto.client("s3"), "customer-bucket")) == 9
        assumed = json.loads(urllib.request.urlopen(moto.url + "/moto-api/data.json").read())["sts"]["AssumedRole"]
        assert {a["external_id"] for a in assumed} == {"ext-7f3a9c-secret"}
        assert "ext-7f3a9c-secret" not in written
        assert not any(a["secret_access_key"] in written for a in assumed)
        assert MotoServer.ADMIN["aws_secret_access_key"] not in written
    finally:
        moto.stop()
