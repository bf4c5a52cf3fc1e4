"""The intake service as its users meet it: the platform's own Python SDK over HTTP against
`notif-export intake serve`, every validation rule, idempotency, both authentication schemes,
concurrent clients, the published OpenAPI document (schemathesis), and a call's way from the
SDK to the bucket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import psutil
import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient
from suprsend import Event, Suprsend, WorkflowTriggerRequest

from notif_export.cli import main as cli_main
from notif_export.dev.demo import demo_intake_keys, intake_keys_file
from notif_export.dev.local_s3 import find_free_port, wait_for_port
from notif_export.intake.app import build_app
from notif_export.intake.auth import signature
from notif_export.intake.calls import Call
from notif_export.intake.writer import Writer
from notif_export.lib.settings import (
    PROJECT_DIR,
    IntakeSettings,
    Settings,
    SettingsError,
)
from notif_export.lib.source import TABLES, SourceDatabase
from notif_export_tests.conftest import (
    export_env,
    file_rows,
    list_keys,
    materialize,
    read_object,
    source_rows,
)

KEYS = IntakeSettings(workspace_key="ws_test_0123456789abcdef", workspace_secret="secret-0123456789abcdef",
                      api_key="apikey-0123456789abcdef")
BEARER = {"Authorization": f"Bearer {KEYS.api_key}"}


def intake_env(source_url: str) -> dict[str, str]:
    # On PostgreSQL, two service processes whatever this machine's CPUs: the SDK tests, concurrent
    # clients and the way to the bucket cover calls spread over processes.
    return {**os.environ, "NOTIF_EXPORT_SOURCE_URL": source_url, "PYTHONPATH": str(PROJECT_DIR),
            "NOTIF_EXPORT_INTAKE_PROCESSES": "2" if source_url.startswith("postgresql") else "1",
            **{variable: getattr(KEYS, name) for name, variable in IntakeSettings.VARIABLES.items()}}


class IntakeProcess:
    """`notif-export intake serve` on a free port, stopped by its own PID."""

    def __init__(self, source_url: str):
        self.port = find_free_port()
        self.source_url = source_url
        self.output: str | None = None
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen([sys.executable, "-m", "notif_export.cli", "intake", "serve", "--port",
                                      str(self.port)], env=intake_env(source_url), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_port(self.port, self.proc, "the intake service")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{self.stop()}") from None

    def signed_client(self) -> Suprsend:
        return Suprsend(KEYS.workspace_key, KEYS.workspace_secret, base_url=self.url)

    def bearer_client(self) -> Suprsend:
        return Suprsend.with_workspace_api_key(KEYS.workspace_key, KEYS.api_key, base_url=self.url)

    def stop(self) -> str:
        if self.output is None:
            try:
                workers = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:  # it ended at its start: its output says why
                workers = []
            self.proc.terminate()
            self.output, _ = self.proc.communicate(timeout=15)
            _, running = psutil.wait_procs(workers, timeout=5)
            assert not running, f"service processes outlived the service: {running}"
        return self.output


@pytest.fixture
def intake(source):
    server = IntakeProcess(source.url.render_as_string(hide_password=False))
    yield server
    output = server.stop()
    assert server.proc.returncode == 0, output
    for secret in (KEYS.workspace_secret, KEYS.api_key):
        assert secret not in output  # keys never reach the log


@pytest.fixture
def client(tmp_path):
    """The application in process (validation, idempotency, auth): no server start per test."""
    source = SourceDatabase(f"sqlite:///{tmp_path / 'source.db'}")
    source.init_schema()
    with TestClient(build_app(KEYS, source), base_url="http://127.0.0.1") as test_client:
        test_client.source = source
        yield test_client
    source.dispose()


def request_rows(source: SourceDatabase) -> list[dict]:
    table = TABLES["requests"]
    with source.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.created_at)).mappings()]


def count(source: SourceDatabase, name: str) -> int:
    with source.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(TABLES[name])).scalar()


# ---- the SDK against the running service --------------------------------------------------------
def test_the_sdk_triggers_workflows_and_events_recorded_exactly_as_sent(intake, source):
    signed, bearer = intake.signed_client(), intake.bearer_client()
    single = {"workflow": "order-confirmation", "data": {"order_id": "ord_1", "amount": 12.5},
              "recipients": ["user_1", {"distinct_id": "user_2", "$email": ["u2@example.com"], "$channels": ["email"]},
                             {"id": "eng", "object_type": "teams"}],
              "actor": "user_9"}
    response = signed.workflows.trigger(WorkflowTriggerRequest(dict(single), idempotency_key="order-1",
                                                               tenant_id="acme"))
    assert response["success"] and response["status_code"] == 202 and response["raw_response"] == {"status": "success"}
    assert bearer.workflows.trigger(WorkflowTriggerRequest(
        {"workflow": "password-reset", "recipients": ["user_3"], "data": {}}, idempotency_key="reset-1"))["success"]

    bulk = bearer.workflows.bulk_trigger_instance()
    bulk.append(*[WorkflowTriggerRequest({"workflow": "otp-login", "recipients": [f"user_{i}"], "data": {"n": i}},
                                         idempotency_key=f"otp-{i}") for i in range(30)])
    bulk_response = bulk.trigger()
    assert (bulk_response.status, bulk_response.total, bulk_response.success) == ("success", 30, 30)

    assert signed.track_event(Event("user_4", "NEW_COMMENT", {"comment": "hi"}, idempotency_key="ev-1"))["success"]
    events = signed.bulk_events.new_instance()
    events.append(*[Event(f"user_{i}", "ORDER_SHIPPED", {"i": i}, idempotency_key=f"ship-{i}") for i in range(5)])
    assert events.trigger().success == 5

    rows = {r["idempotency_key"]: r for r in request_rows(source)}
    assert len(rows) == 1 + 1 + 30 + 1 + 5
    first = rows["order-1"]
    sent = {**single, "$idempotency_key": "order-1", "tenant_id": "acme"}
    assert first["payload"] == json.dumps(sent, ensure_ascii=False)  # the body as the SDK serialized it
    assert json.loads(first["payload"]) == sent
    assert (first["api_type"], first["api_name"], first["wf_trigger_type"], first["tenant_id"], first["actor"],
            first["status"]) == ("workflow", "order-confirmation", "api", "acme", "user_9", "completed")
    assert list(first["distinct_id_list"]) == ["user_1", "user_2", "teams/eng"]
    assert [e["distinct_id"] for e in first["executions"]] == ["user_1", "user_2", "teams/eng"]
    assert json.loads(first["metadata"])["auth"] == "signature"
    assert json.loads(first["metadata"])["sdk"].startswith("suprsend-py-sdk/")
    assert json.loads(rows["reset-1"]["metadata"])["auth"] == "bearer"
    assert json.loads(rows["otp-7"]["payload"])["data"] == {"n": 7}
    event = rows["ev-1"]
    assert (event["api_type"], event["api_name"], list(event["distinct_id_list"])) == ("event", "NEW_COMMENT",
                                                                                        ["user_4"])
    assert json.loads(event["payload"])["properties"]["comment"] == "hi"
    assert event["executions"][0]["workflow_slug"] == "comment-mention"
    # What the calls started: the execution model's step logs and messages, joined to the requests.
    exec_ids = {e["exec_id"] for r in rows.values() for e in r["executions"]}
    table = TABLES["workflow_executions"]
    with source.connect() as conn:
        logged = {r[0] for r in conn.execute(sa.select(table.c.execution_id))}
        keys = {r[0] for r in conn.execute(sa.select(TABLES["messages"].c.idempotency_key))}
    assert logged == exec_ids and "order-1" in keys


def test_a_call_from_the_sdk_reaches_the_bucket(intake, source, s3, bucket, aws_env):
    client = intake.bearer_client()
    bulk = client.workflows.bulk_trigger_instance()
    bulk.append(*[WorkflowTriggerRequest({"workflow": "incident-alert", "recipients": [f"oncall_{i}"], "data": {}})
                  for i in range(20)])
    assert bulk.trigger().success == 20
    intake.stop()  # its status changes stop too: the source holds still while it is compared
    hour = request_rows(source)[0]["created_at"].replace(minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
    env = export_env(source.url.render_as_string(hide_password=False), bucket, aws_env,
                     NOTIF_EXPORT_LAYOUT="per_type")
    materialize(env, [hour])
    for name in TABLES:
        expected = source_rows(source, name, hour)
        [key] = [k for k in list_keys(s3, bucket) if k.startswith(f"{name}/")]
        assert file_rows(read_object(s3, bucket, key), name) == expected
    assert len(expected) > 0 and len(source_rows(source, "requests", hour)) == 20


def test_concurrent_clients_lose_nothing(intake, source):
    errors: list = []

    def client_thread(n: int) -> None:
        client = intake.signed_client() if n % 2 else intake.bearer_client()
        for i in range(25):
            response = client.workflows.trigger(WorkflowTriggerRequest(
                {"workflow": "password-reset", "recipients": [f"user_{n}_{i}"], "data": {}},
                idempotency_key=f"c{n}-{i}"))
            if not response["success"]:
                errors.append(response)

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {r["idempotency_key"] for r in request_rows(source)} == {f"c{n}-{i}" for n in range(8) for i in range(25)}


# ---- validation ---------------------------------------------------------------------------------------
VALID = {"workflow": "password-reset", "recipients": ["user_1"], "data": {}}


@pytest.mark.parametrize("path, body, field", [
    ("/trigger/", {**VALID, "workflow": "Password Reset"}, "workflow"),
    ("/trigger/", {**VALID, "workflow": ""}, "workflow"),
    ("/trigger/", {k: v for k, v in VALID.items() if k != "workflow"}, "body"),
    ("/trigger/", {**VALID, "recipients": []}, "recipients"),
    ("/trigger/", {**VALID, "recipients": [f"u{i}" for i in range(101)]}, "recipients"),
    ("/trigger/", {**VALID, "recipients": "user_1"}, "recipients"),
    ("/trigger/", {**VALID, "recipients": [{"$email": "a@example.com"}]}, "recipients[0]"),
    ("/trigger/", {**VALID, "recipients": [{"id": "eng"}]}, "recipients[0]"),
    ("/trigger/", {**VALID, "recipients": [{"distinct_id": "u", "$channels": ["pigeon"]}]},
     "recipients[0].$channels[0]"),
    ("/trigger/", {**VALID, "data": "not an object"}, "data"),
    ("/trigger/", {**VALID, "tenant_id": "t" * 65}, "tenant_id"),
    ("/trigger/", {**VALID, "$idempotency_key": "k" * 256}, "$idempotency_key"),
    ("/trigger/", {**VALID, "surprise": 1}, "body"),
    ("/trigger/", [VALID] * 101, "body"),
    ("/trigger/", [], "body"),
    ("/trigger/", "just a string", "body"),
    ("/v2/event/", {"event": "NEW_COMMENT"}, "body"),
    ("/v2/event/", {"event": "NEW_COMMENT", "distinct_id": "u", "properties": []}, "properties"),
    ("/v2/event/", {"event": "NEW_COMMENT", "distinct_id": "u", "$time": "yesterday"}, "$time"),
    ("/v2/bulk/event/", {"event": "NEW_COMMENT", "distinct_id": "u"}, "body"),
])
def test_an_invalid_body_gets_400_naming_the_field_and_is_recorded_as_a_failure(client, path, body, field):
    response = client.post(path, json=body, headers=BEARER)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message"].startswith(f"{field}: ")
    [row] = request_rows(client.source)
    assert row["status"] == "failure" and row["executions"] == []
    assert (row["errors"][0]["error_code"], row["errors"][0]["error_description"]) == ("invalid_payload",
                                                                                    error["message"])
    assert json.loads(row["payload"]) == body
    assert json.loads(row["response"]) == {"status_code": 400, "body": response.json()}
    assert count(client.source, "workflow_executions") == 0


def test_a_body_that_is_not_json_is_recorded_as_sent(client):
    response = client.post("/trigger/", content=b"{not json", headers={**BEARER, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "body"
    [row] = request_rows(client.source)
    assert (row["payload"], row["status"]) == ("{not json", "failure")


def test_a_bulk_call_answers_each_item(client):
    items = [VALID, {**VALID, "workflow": "Bad"}, {**VALID, "recipients": ["user_2"]}]
    response = client.post("/trigger/", json=items, headers=BEARER)
    assert response.status_code == 202
    assert response.json()["status"] == "partial"
    assert [r["status"] for r in response.json()["records"]] == ["success", "error", "success"]
    assert response.json()["records"][1]["error"]["field"] == "workflow"
    assert sorted(r["status"] for r in request_rows(client.source)) == ["completed", "completed", "failure"]


def test_an_unknown_workflow_is_accepted_and_logged_as_failed(client):
    response = client.post("/trigger/", json={**VALID, "workflow": "no-such-workflow"}, headers=BEARER)
    assert response.status_code == 202
    [row] = request_rows(client.source)
    assert row["status"] == "failure" and row["errors"][0]["error_code"] == "workflow_not_found"


def test_a_body_over_800_kb_gets_413_and_is_not_recorded(client):
    body = {**VALID, "data": {"blob": "x" * (800 * 1024)}}
    response = client.post("/trigger/", json=body, headers=BEARER)
    assert response.status_code == 413 and response.json()["error"]["type"] == "payload_too_large"
    assert request_rows(client.source) == []


# ---- idempotency ------------------------------------------------------------------------------------
def test_a_repeated_idempotency_key_gets_the_first_answer_and_starts_nothing(client):
    body = {**VALID, "$idempotency_key": "once"}
    first = client.post("/trigger/", json=body, headers=BEARER)
    executions = count(client.source, "workflow_executions")
    again = client.post("/trigger/", json={**body, "recipients": ["someone_else"]}, headers=BEARER)
    bulk = client.post("/trigger/", json=[body, body], headers=BEARER)
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert [r["status"] for r in bulk.json()["records"]] == ["success", "success"]
    [row] = request_rows(client.source)
    assert list(row["distinct_id_list"]) == ["user_1"]
    assert count(client.source, "workflow_executions") == executions > 0
    # Events: the same $insert_id (an SDK retry) is the same event.
    event = {"event": "NEW_COMMENT", "distinct_id": "u", "$insert_id": "ins-1", "properties": {}}
    for _ in range(2):
        assert client.post("/v2/event/", json=event, headers=BEARER).status_code == 202
    assert len(request_rows(client.source)) == 2


def test_a_rejected_call_does_not_take_its_key(client):
    bad = client.post("/trigger/", json={**VALID, "recipients": [], "$idempotency_key": "retry-me"}, headers=BEARER)
    good = client.post("/trigger/", json={**VALID, "$idempotency_key": "retry-me"}, headers=BEARER)
    assert (bad.status_code, good.status_code) == (400, 202)
    assert sorted(r["status"] for r in request_rows(client.source)) == ["completed", "failure"]


# ---- authentication ---------------------------------------------------------------------------------
def signed_headers(body: bytes, uri: str, date: datetime | None = None, secret: str = KEYS.workspace_secret,
                   key: str = KEYS.workspace_key) -> dict:
    date_text = format_datetime(date or datetime.now(timezone.utc), usegmt=True)
    content_type = "application/json; charset=utf-8"
    return {"Content-Type": content_type, "Date": date_text,
            "Authorization": f"{key}:{signature(secret, 'POST', body, content_type, date_text, uri)}"}


@pytest.mark.parametrize("headers, reason", [
    ({}, "no Authorization header"),
    ({"Authorization": "Bearer not-the-key"}, "unknown API key"),
    ({"Authorization": f"Bearer {KEYS.workspace_secret}"}, "unknown API key"),
    ("other-secret", "bad signature"),
    ("other-key", "unknown workspace key"),
    ("16-minutes-late", "more than 15 minutes"),
    ("no-date", "Date header"),
    ("other-uri", "bad signature"),
])
def test_unknown_keys_bad_signatures_and_stale_dates_get_401_and_nothing_is_recorded(client, headers, reason):
    body = json.dumps(VALID).encode()
    if headers == "other-secret":
        headers = signed_headers(body, "/trigger/", secret="x" * 24)
    elif headers == "other-key":
        headers = signed_headers(body, "/trigger/", key="ws_someone_else_0123456789")
    elif headers == "16-minutes-late":
        headers = signed_headers(body, "/trigger/", date=datetime.now(timezone.utc) - timedelta(minutes=16))
    elif headers == "no-date":
        headers = {k: v for k, v in signed_headers(body, "/trigger/").items() if k != "Date"}
    elif headers == "other-uri":
        headers = signed_headers(body, "/event/")
    response = client.post("/trigger/", content=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401 and reason in response.json()["error"]["message"]
    assert request_rows(client.source) == []


def test_both_schemes_and_the_legacy_path_are_accepted(client):
    body = json.dumps(VALID).encode()
    assert client.post("/trigger/", content=body, headers=signed_headers(body, "/trigger/")).status_code == 202
    within = datetime.now(timezone.utc) + timedelta(minutes=14)
    assert client.post("/trigger/", content=body, headers=signed_headers(body, "/trigger/", within)).status_code == 202
    legacy = f"/{KEYS.workspace_key}/trigger/"
    assert client.post(legacy, content=body, headers=signed_headers(body, legacy)).status_code == 202
    assert client.post(legacy, content=body, headers={**BEARER, "Content-Type": "application/json"}).status_code == 202
    other = "/ws_someone_else_0123456789/trigger/"
    assert client.post(other, content=body, headers=BEARER).status_code == 401
    assert len(request_rows(client.source)) == 4


def test_the_intake_keys_are_validated_and_required():
    with pytest.raises(SettingsError, match="NOTIF_EXPORT_INTAKE_WORKSPACE_KEY='short'"):
        Settings.from_env({"NOTIF_EXPORT_INTAKE_WORKSPACE_KEY": "short"})
    with pytest.raises(SettingsError, match="NOTIF_EXPORT_INTAKE_API_KEY is too short"):
        Settings.from_env({"NOTIF_EXPORT_INTAKE_API_KEY": "abc"})
    with pytest.raises(SettingsError, match="needs NOTIF_EXPORT_INTAKE_WORKSPACE_KEY"):
        Settings.from_env({}).intake.require()
    assert "secret" not in repr(KEYS) and KEYS.api_key not in repr(KEYS)


# ---- the published document, tested against the running service ----------------------------------
@pytest.fixture(scope="module")
def sqlite_intake(tmp_path_factory):
    server = IntakeProcess(f"sqlite:///{tmp_path_factory.mktemp('intake') / 'source.db'}")
    yield server
    server.stop()


def test_the_openapi_document_publishes_the_request_schemas(sqlite_intake):
    document = requests.get(sqlite_intake.url + "openapi.json", timeout=10).json()
    paths = {"/trigger/", "/{workspace_key}/trigger/", "/event/", "/v2/event/", "/v2/bulk/event/"}
    assert paths <= set(document["paths"])
    trigger = document["components"]["schemas"]["WorkflowTrigger"]
    assert trigger["properties"]["workflow"]["pattern"] == "^[a-z0-9-_]+$"
    assert trigger["properties"]["recipients"]["maxItems"] == 100


def test_schemathesis_finds_no_server_error_and_no_answer_against_the_document(sqlite_intake):
    """A bounded run: a few examples per operation, valid and invalid, with the API key."""
    api = schemathesis.openapi.from_url(sqlite_intake.url + "openapi.json")
    failures = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 5
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def check(case):
            case.call_and_validate(headers=BEARER)

        try:
            check()
        except Exception as exc:  # schemathesis raises its failures; gather them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    source = SourceDatabase(sqlite_intake.source_url)
    statuses = {r["status"] for r in request_rows(source)}
    source.dispose()
    assert statuses == {"completed", "failure"}  # valid and invalid calls were made, and recorded


# ---- what follows a call, and the demo's keys -------------------------------------------------------
def test_the_writer_moves_the_messages_statuses_on_later(source):
    clock = [datetime.now(timezone.utc)]
    writer = Writer(source, KEYS.workspace_key, clock=lambda: clock[0])
    writer.start()
    try:
        body = {"workflow": "order-confirmation", "recipients": ["user_1", "user_2"], "data": {}}
        call = Call("workflow", body, json.dumps(body), clock[0], {}, None)
        assert asyncio.run(writer.submit([call])) == [(202, {"status": "success"})]
        messages = TABLES["messages"]
        with source.connect() as conn:
            assert {r[0] for r in conn.execute(sa.select(messages.c.message_status))} <= {"triggered",
                                                                                          "delivery_failed"}
        clock[0] += timedelta(days=30)  # every scheduled change is due
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with source.connect() as conn:
                statuses = [r[0] for r in conn.execute(sa.select(messages.c.message_status))]
            if "triggered" not in statuses:
                break
            time.sleep(0.2)
        assert "triggered" not in statuses and {"delivered", "seen", "clicked"} & set(statuses), statuses
    finally:
        writer.stop()


def waiting_on_a_lock(source: SourceDatabase) -> bool:
    with source.connect() as conn:  # a transaction of its own: each sees the activity anew
        return bool(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                         "AND datname = current_database()")).scalar())


@pytest.mark.parametrize("source_url", ["postgresql"], indirect=True)  # SQLite has a single writer
def test_a_key_another_writer_commits_meanwhile_gets_that_writers_answer(source):
    """Two writers taking the same new key at once: the second one's COPY waits on the key's
    index, fails once the first commits, and is written again, answering as the first did."""
    writer = Writer(source, KEYS.workspace_key)
    writer.start()
    requests_table = TABLES["requests"]
    now = datetime.now(timezone.utc)
    try:
        with source.engine.connect() as other:  # the other writer, its transaction still open
            other.execute(requests_table.insert().values(
                workspace_key=KEYS.workspace_key, created_at=now, updated_at=now, idempotency_key="raced",
                response=json.dumps({"status_code": 202, "body": {"status": "success", "first": True}})))
            body = {**VALID, "$idempotency_key": "raced"}
            answers: list = []
            call = threading.Thread(target=lambda: answers.extend(asyncio.run(writer.submit(
                [Call("workflow", body, json.dumps(body), now, {}, None)]))))
            call.start()
            deadline = time.monotonic() + 10
            while not waiting_on_a_lock(source):
                assert time.monotonic() < deadline, "the writer never waited on the key"
                time.sleep(0.05)
            other.commit()
        call.join(10)
        assert answers == [(202, {"status": "success", "first": True})]
        assert len(request_rows(source)) == 1 and count(source, "workflow_executions") == 0
    finally:
        writer.stop()


def test_the_demo_makes_its_intake_keys_once_and_intake_env_prints_them(tmp_path, capsys):
    settings = Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path)})
    keys, generated = demo_intake_keys(settings, 8123)
    again, _ = demo_intake_keys(settings, 8124)
    assert generated and {k: v for k, v in keys.items() if k != "NOTIF_EXPORT_INTAKE_URL"} == \
        {k: v for k, v in again.items() if k != "NOTIF_EXPORT_INTAKE_URL"}
    assert Settings.from_env({**keys, "NOTIF_EXPORT_HOME": str(tmp_path)}).intake.workspace_key.startswith("ws_demo_")
    assert (intake_keys_file(tmp_path).stat().st_mode & 0o777) == 0o600
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOTIF_EXPORT_HOME", str(tmp_path))
        assert cli_main(["intake", "env"]) == 0
    printed = capsys.readouterr().out
    assert f"export NOTIF_EXPORT_INTAKE_API_KEY={keys['NOTIF_EXPORT_INTAKE_API_KEY']}" in printed
    assert "export NOTIF_EXPORT_INTAKE_URL=http://127.0.0.1:8124/" in printed
    # Keys of the user's own are used as they are, and never written to a file.
    own = Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path / "own"), **{
        variable: getattr(KEYS, name) for name, variable in IntakeSettings.VARIABLES.items()}})
    assert demo_intake_keys(own, 8125) == ({"NOTIF_EXPORT_INTAKE_URL": "http://127.0.0.1:8125/"}, False)
    assert not intake_keys_file(tmp_path / "own").exists()
