"""The JSON objects destination's plain logic: key templates (validation, rendering), bodies,
metadata, settings, and the sync state's windows of record versions."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.json_objects import (
    DEFAULT_KEY_TEMPLATE,
    BadKey,
    JsonDestination,
    KeyTemplate,
    KeyTemplateError,
    KeyTemplateWarning,
    ObjectsWritten,
    encode_body,
    prepare_objects,
    record_context,
    record_data,
    time_fields,
)
from notif_export.lib.settings import Settings, SettingsError
from notif_export.lib.sync import ObjectState, Scan, SyncState, object_windows

REQUESTS, MESSAGES = DATA_POINTS["requests"], DATA_POINTS["messages"]
UPDATED = datetime(2026, 11, 20, 9, 5, 7, 123456, tzinfo=timezone.utc)


def request_row(**values) -> dict:
    """A requests row as pyarrow gives it (`RecordBatch.to_pylist()`)."""
    row = {c: None for c in REQUESTS.columns}
    row.update(workspace_key="ws-1", created_at=UPDATED - timedelta(hours=1), updated_at=UPDATED,
               idempotency_key="req-1", tenant_id="acme", status="processed", distinct_id_list=["u1", "u2"],
               errors=[{"error_code": "E1", "error_description": "bad", "error_type": "t", "severity": "error",
                        "workflow_slug": "w"}],
               payload='{"order": {"id": 7}}', response="not json {", metadata=None)
    row.update(values)
    return row


def test_body_embeds_json_columns_and_formats_timestamps():
    data = json.loads(encode_body(record_data(REQUESTS, request_row())))["data"]
    assert list(data) == REQUESTS.columns
    assert data["updated_at"] == "2026-11-20T09:05:07.123456Z" and data["created_at"] == "2026-11-20T08:05:07.123456Z"
    assert data["payload"] == {"order": {"id": 7}}                # JSON-as-string: embedded
    assert data["response"] == "not json {"                       # not valid JSON: stays a string
    assert data["metadata"] is None
    assert data["distinct_id_list"] == ["u1", "u2"] and data["errors"][0]["error_code"] == "E1"


def test_time_namespace_is_zero_padded_strings_but_unix():
    assert time_fields(UPDATED) == {
        "year": "2026", "month": "11", "day": "20", "hour": "09", "minute": "05", "second": "07",
        "date": "2026-11-20", "datetime": "2026-11-20T09:05:07", "unix": 1795165507,
        "rfc3339": "2026-11-20T09:05:07Z", "rfc3339_nano": "2026-11-20T09:05:07.123456000Z"}


def test_metadata_and_event_id_are_stable_per_record_version():
    first = record_context(REQUESTS, request_row(), "run-1")["metadata"]
    again = record_context(REQUESTS, request_row(status="other"), "run-2")["metadata"]
    later = record_context(REQUESTS, request_row(updated_at=UPDATED + timedelta(microseconds=1)), "run-1")["metadata"]
    assert first["event-id"] == again["event-id"] != later["event-id"]
    assert {k: v for k, v in first.items() if k != "event-id"} == {
        "workspace-key": "ws-1", "data-point": "requests", "operation-id": "run-1",
        "timestamp": "2026-11-20T09:05:07.123456Z", "topic": "requests"}


@pytest.mark.parametrize("template, expected", [
    ("""join('/', [metadata."data-point", time.date, metadata."event-id"])""", "requests/2026-11-20/{event}"),
    (DEFAULT_KEY_TEMPLATE, "2026-11-20T09:05:07.123456000Z_{event}.json"),
    ("""join('/', [data.tenant_id, metadata."operation-id"])""", "acme/run-1"),
    ("""join('/', [time.year, time.month, time.day, to_string(data.payload.order.id)])""", "2026/11/20/7"),
])
def test_the_templates_render_keys(template, expected):
    context = record_context(REQUESTS, request_row(), "run-1")
    parsed = KeyTemplate.parse(template, [REQUESTS] if "payload" in template else [REQUESTS, MESSAGES])
    assert parsed.render(context, "json/") == "json/" + expected.format(event=context["metadata"]["event-id"])


@pytest.mark.parametrize("template, problem", [
    ("metadata.data-point", "not a JMESPath expression"),
    ("join('/', [metadata.\"event-id\"", "not a JMESPath expression"),
    ("Metadata.\"event-id\"", "it reads 'Metadata', outside the namespaces metadata, time and data"),
    ("join('/', [record.id, metadata.\"event-id\"])", "it reads 'record', outside the namespaces"),
    ("metadata.event_id", "metadata has no field 'event_id'"),
    ("time.week", "time has no field 'week'"),
    ("join('/', [data.message_id, metadata.\"event-id\"])", "data.message_id is not a column of requests"),
    ("metadata", "not a non-empty string"),
    ("time.unix", "gives 1767323045 for a requests record, not a non-empty string"),
    ("''", "not a non-empty string"),
    ("join('/', [data.tenant_id, `1`])", "it fails on a requests record"),
])
def test_invalid_templates_are_refused_with_the_template_and_the_problem(template, problem):
    with pytest.raises(KeyTemplateError) as refused:
        KeyTemplate.parse(template, [REQUESTS, MESSAGES])
    assert f"NOTIF_EXPORT_JSON_KEY_TEMPLATE={template!r} is refused" in str(refused.value)
    assert problem in str(refused.value)


def test_a_template_without_event_id_or_record_key_warns_of_overwrites():
    def warning(template):
        return KeyTemplate.parse(template, [REQUESTS, MESSAGES]).overwrite_warning([REQUESTS, MESSAGES])

    assert warning(DEFAULT_KEY_TEMPLATE) is None
    assert "of messages, requests" not in warning("join('/', [data.idempotency_key, time.rfc3339])")
    assert "record key of messages:" in warning("join('/', [data.idempotency_key, time.rfc3339])")
    assert warning("join('/', [data.tenant_id, metadata.\"operation-id\"])").endswith(
        "records that give the same key overwrite each other (the later object replaces the earlier one)")


@pytest.mark.parametrize("values, why", [
    ({"tenant_id": None}, "the template fails on it"),
    ({"tenant_id": "t" * 1100}, "the key is 1107 bytes, over S3's 1024"),
    ({"tenant_id": ""}, "the template gives an empty key"),
])
def test_a_bad_key_skips_that_record_only(values, why):
    destination = JsonDestination(data_points=["requests"], key_template="join('/', [data.tenant_id, 'x'])"
                                  if not values["tenant_id"] == "" else "data.tenant_id")
    written = ObjectsWritten()
    rows = [request_row(idempotency_key="good-1"), request_row(idempotency_key="bad", **values),
            request_row(idempotency_key="good-2")]
    objects = list(prepare_objects(REQUESTS, destination, rows, "run-1", written))
    assert len(objects) == 2 and written.failed_keys == 1
    assert written.failures[0].startswith("requests idempotency_key=bad updated_at=2026-11-20T09:05:07.123456Z: ")
    assert why in written.failures[0]
    with pytest.raises(BadKey):
        destination.template.render(record_context(REQUESTS, rows[1], "run-1"), destination.prefix)


def settings(**env) -> Settings:
    return Settings.from_env({"NOTIF_EXPORT_HOME": "/tmp/notif-export-settings-test", **env})


def test_settings_defaults_and_errors():
    default = settings(NOTIF_EXPORT_BUCKET="acme-logs").json_destination
    assert (default.bucket, default.prefix, default.storage_class, default.data_points) == \
        ("acme-logs", "json/", "STANDARD", [])
    assert default.put_args({})["ServerSideEncryption"] == "AES256"
    custom = settings(NOTIF_EXPORT_JSON_DATA_POINTS="messages, requests", NOTIF_EXPORT_JSON_BUCKET="other-bucket",
                      NOTIF_EXPORT_JSON_PREFIX="events", NOTIF_EXPORT_JSON_STORAGE_CLASS="deep_archive",
                      NOTIF_EXPORT_SSE="aws:kms", NOTIF_EXPORT_KMS_KEY_ID="alias/logs").json_destination
    assert (custom.bucket, custom.prefix, custom.storage_class, custom.data_points) == \
        ("other-bucket", "events/", "DEEP_ARCHIVE", ["messages", "requests"])
    assert custom.put_args({})["SSEKMSKeyId"] == "alias/logs"
    with pytest.raises(SettingsError) as bad:
        settings(NOTIF_EXPORT_JSON_DATA_POINTS="mesages", NOTIF_EXPORT_JSON_STORAGE_CLASS="COLD",
                 NOTIF_EXPORT_JSON_BUCKET="Bad_Bucket", NOTIF_EXPORT_JSON_KEY_TEMPLATE="foo")
    for problem in ("NOTIF_EXPORT_JSON_DATA_POINTS='mesages': unknown mesages",
                    "NOTIF_EXPORT_JSON_STORAGE_CLASS='COLD' is not supported; use one of: STANDARD, STANDARD_IA, "
                    "ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, GLACIER_IR, DEEP_ARCHIVE",
                    "NOTIF_EXPORT_JSON_BUCKET='Bad_Bucket' is not a valid S3 bucket name"):
        assert problem in str(bad.value)
    with pytest.warns(KeyTemplateWarning, match="overwrite each other"):
        settings(NOTIF_EXPORT_JSON_DATA_POINTS="requests", NOTIF_EXPORT_JSON_KEY_TEMPLATE="data.tenant_id")


def at(minutes: float) -> datetime:
    return datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc) + timedelta(minutes=minutes)


OVERLAP = timedelta(minutes=10)
HOUR = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)


def test_windows_follow_the_sync_rules():
    # New: forward only, no window.
    first = object_windows(None, Scan(None, [(HOUR, at(1))]), {}, OVERLAP, True, at(2))
    assert first.windows == [] and first.state.position == at(1).isoformat()
    # Changes past the position: one window (position, newest].
    tick = object_windows(first.state, Scan(at(-9), [(HOUR, at(1)), (HOUR, at(3))]), {}, OVERLAP, True, at(4))
    assert [(w.after, w.until, w.late_hours) for w in tick.windows] == [(at(1).isoformat(), at(3).isoformat(), ())]
    # A late commit below the position: its hour's overlap window again.
    late = object_windows(tick.state, Scan(at(-7), [(HOUR, at(1)), (HOUR, at(2)), (HOUR, at(3))]), {}, OVERLAP,
                          True, at(5))
    assert [(w.after, w.until, w.late_after, w.late_hours) for w in late.windows] == \
        [(at(3).isoformat(), at(3).isoformat(), at(-7).isoformat(), ("2026-11-20-11:00",))]
    # A failed run's windows are requested again.
    late.state.await_run("r1", [], at(5))
    late.state.windows["r1"] = [{"after": "a", "until": "b", "late_after": None, "late_hours": []}]
    same = Scan(at(-7), [(HOUR, at(1)), (HOUR, at(2)), (HOUR, at(3))])
    retried = object_windows(late.state, same, {"r1": "failure"}, OVERLAP, True, at(6))
    assert [(w.after, w.until, w.reason) for w in retried.windows] == [("a", "b", "retry: run r1 did not succeed")]
    # Disabled: no window, the position kept; the state round-trips through the cursor.
    off = object_windows(retried.state, None, {}, OVERLAP, False, at(7))
    assert off.windows == [] and off.state.disabled_since and off.state.position == at(3).isoformat()
    state = SyncState(objects={"requests": off.state})
    assert SyncState.from_json(state.to_json()) == state
    assert isinstance(SyncState.from_json(state.to_json()).objects["requests"], ObjectState)


def test_a_data_point_that_started_on_an_empty_table_writes_its_first_rows_in_one_window():
    """No position yet: the window from the start holds every version, and no hour is read
    again as a late commit (its lower bound would be missing)."""
    empty = object_windows(None, Scan(None, []), {}, OVERLAP, True, at(1))
    assert empty.windows == [] and empty.state.position is None
    first = object_windows(empty.state, Scan(None, [(HOUR, at(2)), (HOUR, at(3))]), {}, OVERLAP, True, at(4))
    assert [(w.after, w.until, w.late_after, w.late_hours) for w in first.windows] == \
        [(None, at(3).isoformat(), None, ())]
