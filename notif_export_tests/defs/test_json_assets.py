"""The JSON objects destination through Dagster: the sync sensor ticking by hand with its runs
executed for real, and the `<data point>_json` assets materialized, against the local S3 server;
every object read back and compared with the source."""

import hashlib
import json
from datetime import datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib import json_objects
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.hours import hour_key
from notif_export.lib.json_objects import KeyTemplateWarning
from notif_export.lib.settings import SettingsError
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import NOW, list_keys, normalize

REQUESTS = TABLES["requests"]
EXAMPLES = {
    "by_date": """join('/', [metadata."data-point", time.date, metadata."event-id"])""",
    "default": """join('', [time.rfc3339_nano, '_', metadata."event-id", '.json'])""",
    "by_tenant": """join('/', [data.tenant_id, metadata."operation-id"])""",
}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def env(source, source_url, bucket, aws_env):
    Simulator(source, seed=3, mix=TrafficMix(requests_per_hour=20)).history(3, NOW)
    return {**aws_env, "NOTIF_EXPORT_SOURCE_URL": source_url, "NOTIF_EXPORT_BUCKET": bucket,
            "NOTIF_EXPORT_START": hour_key(NOW - timedelta(days=1)), "NOTIF_EXPORT_DATA_POINTS": "messages",
            "NOTIF_EXPORT_JSON_DATA_POINTS": "requests"}


def rfc3339(value: datetime) -> str:
    return normalize({"v": value})["v"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_data(db, key: str) -> dict:
    """The source row as the contract says the object holds it, built here from the source alone."""
    with db.connect() as conn:
        row = dict(conn.execute(sa.select(REQUESTS).where(REQUESTS.c.idempotency_key == key)).mappings().one())
    out = {}
    for name in DATA_POINTS["requests"].columns:
        value = row[name]
        if isinstance(value, datetime):
            value = rfc3339(value)
        elif name in ("payload", "response", "metadata") and value is not None:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[name] = value
    return out


def expected_event_id(data: dict) -> str:
    version = ["requests", data["idempotency_key"], data["updated_at"]]
    return hashlib.sha256(json.dumps(version).encode()).hexdigest()[:32]


def read_objects(s3, bucket) -> dict[str, tuple[dict, dict]]:
    """key -> (body, metadata) of every JSON object."""
    out = {}
    for key in list_keys(s3, bucket):
        got = s3.get_object(Bucket=bucket, Key=key)
        out[key] = (json.loads(got["Body"].read()), got["Metadata"])
    return out


def change(db, keys: list[str], when: datetime, **values) -> None:
    with db.connect() as conn:
        conn.execute(REQUESTS.update().where(REQUESTS.c.idempotency_key.in_(keys)).values(updated_at=when, **values))
        conn.commit()


def some_keys(db, n: int) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(REQUESTS.c.idempotency_key).order_by(REQUESTS.c.created_at).limit(n))
                    .scalars())


class Sync:
    """The sync sensor ticking by hand; only the JSON objects runs are executed."""

    def __init__(self, instance, env):
        self.instance, self.env, self.cursor = instance, env, None

    def tick(self, **settings) -> list[dg.RunRequest]:
        defs = build_definitions({**self.env, **settings})
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=defs.resources,
                                     definitions=defs) as context:
            result = defs.resolve_sensor_def("sync")(context)
        self.cursor = result.cursor
        requests = [r for r in result.run_requests or [] if r.job_name == "sync_json_objects"]
        for request in requests:
            defs.resolve_job_def("sync_json_objects").execute_in_process(
                run_config=request.run_config, instance=self.instance, tags=request.tags,
                asset_selection=request.asset_selection)
        return requests


def test_each_changed_record_version_becomes_an_object_equal_to_the_source(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    assert sync.tick() == []                                     # first setup: going forward only
    first, second, third = some_keys(source, 3)
    change(source, [first, second, third], NOW + timedelta(minutes=1), status="changed-once")
    requests = sync.tick()
    assert [r.asset_selection for r in requests] == [[dg.AssetKey("requests_json")]]
    objects = read_objects(s3, bucket)
    assert len(objects) == 3
    run_id = instance.get_runs(limit=1)[0].run_id
    for key, (body, metadata) in objects.items():
        data = expected_data(source, body["data"]["idempotency_key"])
        assert body == {"data": data}                            # the record, round-tripped
        event_id = expected_event_id(data)
        assert metadata == {"workspace-key": data["workspace_key"], "data-point": "requests", "operation-id": run_id,
                            "event-id": event_id, "timestamp": data["updated_at"], "topic": "requests"}
        assert key == f"json/{(NOW + timedelta(minutes=1)):%Y-%m-%dT%H:%M:%S}.000000000Z_{event_id}.json"
    event = instance.get_latest_materialization_event(dg.AssetKey("requests_json")).asset_materialization
    assert event.metadata["objects"].value == 3 and event.metadata["failed_keys"].value == 0
    assert event.metadata["bytes"].value == sum(s3.head_object(Bucket=bucket, Key=k)["ContentLength"] for k in objects)

    # Changed again before the next tick: a second object for the new version, a new event id.
    change(source, [first], NOW + timedelta(minutes=2), status="changed-twice")
    assert len(sync.tick()) == 1
    versions = dict((b["data"]["status"], m["event-id"]) for b, m in read_objects(s3, bucket).values()
                    if b["data"]["idempotency_key"] == first)
    assert sorted(versions) == ["changed-once", "changed-twice"]
    assert versions["changed-twice"] == expected_event_id(expected_data(source, first)) != versions["changed-once"]
    assert len(read_objects(s3, bucket)) == 4
    assert sync.tick() == []                                     # nothing changed since


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_paused_removed_and_re_enabled(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    sync.tick()
    a, b, c = some_keys(source, 3)
    change(source, [a], NOW + timedelta(minutes=1))               # while paused: caught at resume
    assert len(sync.tick()) == 1 and len(list_keys(s3, bucket)) == 1
    assert sync.tick(NOTIF_EXPORT_JSON_DATA_POINTS="") == []     # removed
    change(source, [b], NOW + timedelta(minutes=2))               # while removed
    assert sync.tick(NOTIF_EXPORT_JSON_DATA_POINTS="") == []
    assert len(sync.tick()) == 1                                  # re-enabled: catches up from where it stopped
    assert len(list_keys(s3, bucket)) == 2
    # Added fresh (another data point): going forward only.
    assert sync.tick(NOTIF_EXPORT_JSON_DATA_POINTS="requests,workflow_executions") == []
    change(source, [c], NOW + timedelta(minutes=3))
    assert [r.asset_selection for r in sync.tick(NOTIF_EXPORT_JSON_DATA_POINTS="requests,workflow_executions")] \
        == [[dg.AssetKey("requests_json")]]


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_a_late_commit_and_a_failed_run_are_written_at_the_next_tick(source, env, instance, s3, bucket):
    sync = Sync(instance, env)
    sync.tick()
    a, b, c = some_keys(source, 3)
    change(source, [a], NOW + timedelta(minutes=2))
    assert len(sync.tick()) == 1
    # Committed after that tick, stamped before its position (inside the overlap window).
    change(source, [b], NOW + timedelta(minutes=1), status="late")
    assert len(sync.tick()) == 1
    statuses = {body["data"]["idempotency_key"]: body["data"]["status"]
                for body, _ in read_objects(s3, bucket).values()}
    assert statuses[b] == "late" and set(statuses) == {a, b}
    # The run fails (a bucket that does not exist: failed at once, no retry); the next tick writes its records.
    change(source, [c], NOW + timedelta(minutes=3))
    with pytest.raises(dg.Failure, match="NoSuchBucket"):
        sync.tick(NOTIF_EXPORT_JSON_BUCKET="no-such-bucket-here")
    assert len(read_objects(s3, bucket)) == 2
    assert len(sync.tick()) == 1
    assert c in {body["data"]["idempotency_key"] for body, _ in read_objects(s3, bucket).values()}


def materialize_json(env: dict, after: datetime, until: datetime, **settings) -> dg.ExecuteInProcessResult:
    defs = build_definitions({**env, **settings})
    return dg.materialize([defs.get_assets_def("requests_json")], resources=defs.resources, run_config={
        "ops": {"requests_json": {"config": {"windows": [{"after": after.isoformat(), "until": until.isoformat()}]}}}})


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_the_example_templates_make_the_expected_keys(source, env, s3, bucket):
    keys = some_keys(source, 4)
    when = NOW + timedelta(minutes=5, microseconds=123456)
    change(source, keys, when)
    for name in ("by_date", "default"):
        result = materialize_json(env, NOW, when, NOTIF_EXPORT_JSON_KEY_TEMPLATE=EXAMPLES[name],
                                  NOTIF_EXPORT_JSON_PREFIX=f"{name}/")
        assert result.success
    objects = read_objects(s3, bucket)
    event_ids = sorted(expected_event_id(expected_data(source, k)) for k in keys)
    assert sorted(k for k in objects if k.startswith("by_date/")) == \
        [f"by_date/requests/{when:%Y-%m-%d}/{e}" for e in event_ids]
    assert sorted(k for k in objects if k.startswith("default/")) == \
        [f"default/{when:%Y-%m-%dT%H:%M:%S}.123456000Z_{e}.json" for e in event_ids]

    # By tenant and run: records of one tenant overwrite each other in a run, as the warning says.
    with pytest.warns(KeyTemplateWarning, match="overwrite each other"):
        result = materialize_json(env, NOW, when, NOTIF_EXPORT_JSON_KEY_TEMPLATE=EXAMPLES["by_tenant"],
                                  NOTIF_EXPORT_JSON_PREFIX="by_tenant/")
    tenants = {expected_data(source, k)["tenant_id"] for k in keys}
    assert sorted(k for k in read_objects(s3, bucket) if k.startswith("by_tenant/")) == \
        sorted(f"by_tenant/{t}/{result.run_id}" for t in tenants)
    assert result.asset_materializations_for_node("requests_json")[0].metadata["objects"].value == 4


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_a_record_without_a_valid_key_is_named_and_the_others_are_written(source, env, s3, bucket):
    keys = some_keys(source, 5)
    when = NOW + timedelta(minutes=5)
    change(source, keys, when, tenant_id="acme")
    change(source, keys[:1], when, tenant_id=None)                # the key's join() fails on null
    change(source, keys[1:2], when, tenant_id="t" * 1100)          # a key over S3's 1,024 bytes
    with pytest.warns(KeyTemplateWarning):
        result = materialize_json(env, NOW, when, NOTIF_EXPORT_JSON_KEY_TEMPLATE=EXAMPLES["by_tenant"])
    assert result.success
    metadata = result.asset_materializations_for_node("requests_json")[0].metadata
    assert metadata["failed_keys"].value == 2
    failed = metadata["failed"].value
    assert any(keys[0] in f and "the template fails on it" in f for f in failed)
    assert any(keys[1] in f and "over S3's 1024" in f for f in failed)
    assert list_keys(s3, bucket) == [f"json/acme/{result.run_id}"]   # the other three (one tenant: one key)
    assert metadata["objects"].value == 3


def test_invalid_template_stops_the_code_location_with_the_message(tmp_path):
    with pytest.raises(SettingsError, match=r"NOTIF_EXPORT_JSON_KEY_TEMPLATE='foo\.bar' is refused: it reads 'foo'"):
        build_definitions({"NOTIF_EXPORT_HOME": str(tmp_path), "NOTIF_EXPORT_JSON_KEY_TEMPLATE": "foo.bar"})


def test_definitions_load_with_json_data_points(tmp_path):
    loaded = build_definitions({"NOTIF_EXPORT_HOME": str(tmp_path),
                                "NOTIF_EXPORT_JSON_DATA_POINTS": "messages,requests"})
    dg.Definitions.validate_loadable(loaded)
    assert loaded.get_assets_def("messages_json").group_names_by_key[dg.AssetKey("messages_json")] == "json_objects"
    assert {"messages_json", "requests_json"} <= {k.to_user_string() for k in loaded.resolve_all_asset_keys()}
    assert "workflow_executions_json" not in {k.to_user_string() for k in loaded.resolve_all_asset_keys()}
    assert "sync_json_objects" in {j.name for j in loaded.resolve_all_job_defs()}


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_materializing_from_the_ui_writes_the_last_hours_changes(source, env, s3, bucket):
    recent = some_keys(source, 1)[0]
    change(source, [recent], datetime.now().astimezone() - timedelta(minutes=10))
    defs = build_definitions(env)
    result = dg.materialize([defs.get_assets_def("requests_json")], resources=defs.resources)   # no config
    assert result.success
    assert [body["data"]["idempotency_key"] for body, _ in read_objects(s3, bucket).values()] == [recent]


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_puts_split_over_worker_processes_write_every_record(source, env, s3, bucket, monkeypatch):
    """Large windows have their PUTs split over NOTIF_EXPORT_EXPORT_PROCESSES worker processes
    (each its own S3 client); every record still becomes its object, equal to the source, with
    the storage class and encryption set, as the Parquet files are."""
    monkeypatch.setattr(json_objects, "MIN_OBJECTS_PER_PROCESS", 5)
    result = materialize_json(env, NOW - timedelta(days=2), NOW + timedelta(hours=1),
                              NOTIF_EXPORT_EXPORT_PROCESSES="2", NOTIF_EXPORT_JSON_STORAGE_CLASS="STANDARD_IA")
    assert result.success
    objects = read_objects(s3, bucket)
    keys = some_keys(source, 10_000)
    assert len(keys) >= 10 and result.asset_materializations_for_node("requests_json")[0].metadata["objects"].value \
        == len(objects) == len(keys)
    assert sorted(body["data"]["idempotency_key"] for body, _ in objects.values()) == sorted(keys)
    for key, (body, _) in objects.items():
        assert body["data"] == expected_data(source, body["data"]["idempotency_key"])
        head = s3.head_object(Bucket=bucket, Key=key)
        assert (head["ServerSideEncryption"], head["StorageClass"], head["ContentType"]) == \
            ("AES256", "STANDARD_IA", "application/json")
