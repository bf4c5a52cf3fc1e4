"""The dbt models through real Dagster runs: simulated traffic exported to the real local S3
server, `dbt build` on DuckDB, the tables compared with the source's latest state."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from notif_export.definitions import build_definitions
from notif_export.dev.simulator import Simulator, TrafficMix
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.hours import hour_key
from notif_export.lib.source import TABLES
from notif_export_tests.conftest import (
    NOW,
    export_env,
    list_keys,
    materialize,
    sorted_rows,
)

HOURS = [(NOW - timedelta(hours=5)).replace(minute=0) + timedelta(hours=i) for i in range(6)]  # simulated: 5h

# How staging types the strings the contract keeps as text (the analyst's view of them).
JSON_COLUMNS = {"payload", "response", "metadata", "properties", "execution_failure_reason", "webhook_data"}
BOOLEAN_COLUMNS = {"vendor_fallback_applicable", "is_smart"}
INTEGER_COLUMNS = {"vendor_fallback_level", "wait_time_in_seconds"}


def typed(row: dict) -> dict:
    out = {}
    for column, value in row.items():
        if value is None:
            out[column] = None
        elif column in JSON_COLUMNS:
            out[column] = json.loads(value) if isinstance(value, str) else value
        elif column in BOOLEAN_COLUMNS:
            out[column] = value == "true" if isinstance(value, str) else value
        elif column in INTEGER_COLUMNS:
            out[column] = int(value)
        elif column == "success_achieved_at":
            out[column] = datetime.fromisoformat(value) if isinstance(value, str) else value.replace(tzinfo=timezone.utc)
        elif column in ("errors", "executions"):
            # struct fields absent from a JSON element are nulls in the table
            fields = DATA_POINTS["requests"].schema.field(column).type.value_type
            out[column] = [{f.name: element.get(f.name) for f in fields} for element in value]
        else:
            out[column] = value
    return out


def source_state(db, data_point: str) -> list[dict]:
    """Every row's latest state, read straight from the source."""
    table = TABLES[data_point]
    with db.connect() as conn:
        rows = conn.execute(sa.select(*(table.c[c] for c in DATA_POINTS[data_point].columns))).mappings().all()
    return [typed(r) for r in sorted_rows((dict(r) for r in rows), data_point)]


def mart_state(duckdb_path: Path, data_point: str) -> list[dict]:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        cur = con.execute(f"SELECT {', '.join(DATA_POINTS[data_point].columns)} FROM main.{data_point}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    return [typed(r) for r in sorted_rows(rows, data_point)]


def assert_models_equal_source(duckdb_path: Path, db) -> None:
    for name in DATA_POINTS:
        actual, expected = mart_state(duckdb_path, name), source_state(db, name)
        assert len(actual) == len(expected), name
        for got, want in zip(actual, expected):
            assert got == want, (name, {c: (got[c], want[c]) for c in want if got[c] != want[c]})


def table_contents(duckdb_path: Path) -> dict[str, list[tuple]]:
    """Every table the build made, its columns by name and type and its rows sorted, for comparing
    two builds (but `_built_at`, which says when a row was written)."""
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        columns = {}
        for table, column, data_type in con.execute(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE t.table_type = 'BASE TABLE' AND c.column_name <> '_built_at' ORDER BY 1, 2").fetchall():
            columns.setdefault(table, []).append((column, data_type))
        contents = {}
        for table, names in columns.items():
            quoted = ", ".join(f'"{n}"' for n, _ in names)
            rows = con.execute(f"SELECT {quoted} FROM main.{table}")
            contents[table] = [names] + sorted(rows.fetchall(), key=repr)
        return contents


MARTS = ("requests", "workflow_executions", "messages", "delivery_hourly", "delivery_daily", "error_events",
         "errors_hourly", "message_trace")


def assert_mart_summaries(result: dg.ExecuteInProcessResult, duckdb_path: Path, db) -> None:
    """Each mart's materialization records its row count, and the delivery marts the rates of the
    whole table, as the source's messages imply them (counted here from the source alone)."""
    recorded = {event.asset_key.path[-1]: {name: value.value for name, value in event.materialization.metadata.items()}
                for event in result.get_asset_materialization_events() if event.asset_key.path[-1] in MARTS}
    assert set(recorded) == set(MARTS)
    messages = TABLES["messages"]
    with db.connect() as conn:
        counts = {name: conn.execute(sa.select(sa.func.count()).select_from(TABLES[name])).scalar_one()
                  for name in DATA_POINTS}
        sent = conn.execute(sa.select(messages.c.created_at, messages.c.channel_slug, messages.c.vendor_slug,
                                      messages.c.workflow_slug, messages.c.tenant_id, messages.c.message_status,
                                      messages.c.message_triggered_at, messages.c.message_delivered_at,
                                      messages.c.message_seen_at)).all()
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        errors = {mart: con.execute(f"SELECT count(*) FROM main.{mart}").fetchone()[0]
                  for mart in ("error_events", "errors_hourly")}
    triggered = sum(m.message_triggered_at is not None for m in sent)
    delivered = sum(m.message_delivered_at is not None for m in sent)
    rates = {"delivered_rate": pytest.approx(delivered / triggered),
             "failed_rate": pytest.approx(sum(m.message_status == "delivery_failed" for m in sent) / triggered),
             "seen_rate": pytest.approx(sum(m.message_seen_at is not None for m in sent) / delivered)}
    groups = {grain: len({(cut(m.created_at), *m[1:5]) for m in sent}) for grain, cut in
              (("hourly", lambda t: t.replace(minute=0, second=0, microsecond=0)), ("daily", lambda t: t.date()))}
    assert {mart: metadata.get("dagster/row_count") for mart, metadata in recorded.items()} == {
        **counts, "message_trace": counts["messages"], **errors,
        "delivery_hourly": groups["hourly"], "delivery_daily": groups["daily"]}
    for grain in ("hourly", "daily"):
        assert {name: recorded[f"delivery_{grain}"][name] for name in rates} == rates


def build_models(env: dict[str, str]) -> dg.ExecuteInProcessResult:
    defs = build_definitions(env)
    return dg.materialize([defs.get_assets_def(dg.AssetKey(["analytics", "messages"]))], resources=defs.resources)


def notif_export_dbt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "notif_export.cli", "dbt", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def compiled_files_read(env: dict[str, str], target_path: Path) -> list[str]:
    """The files an incremental build of int_messages__latest would read now: the bucket listed
    (the table a build makes first), then the model compiled."""
    listed = notif_export_dbt(env, "run", "--select", "stg_export_files")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    done = notif_export_dbt(env, "compile", "--select", "int_messages__latest", "--target-path", str(target_path))
    assert done.returncode == 0, done.stdout + done.stderr
    sql = next(target_path.rglob("int_messages__latest.sql")).read_text()
    return sorted(part.split("'")[1] for part in sql.split("staged._source_file in (")[1].split(")")[0].split(", "))


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_models_equal_the_source_after_changes_and_incremental_equals_full(source, source_url, bucket, aws_env, s3,
                                                                          tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(home))
    env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_HOME=str(home))
    Simulator(source, seed=21).history(5, NOW)
    # The last hour in a later second (S3 modification times have whole seconds): if the build
    # starts in that second, its files alone are read again by the next one.
    assert materialize(env, HOURS[:-1]).success
    time.sleep(1.1)
    assert materialize(env, HOURS[-1:]).success

    first = build_models(env)
    assert first.success
    checks = first.get_asset_check_evaluations()
    assert len(checks) >= 40 and all(c.passed for c in checks)
    assert_models_equal_source(home / "analytics.duckdb", source)
    assert_mart_summaries(first, home / "analytics.duckdb", source)

    # Statuses move on: messages are clicked, a failed delivery is retried and delivered (its
    # error goes away), a workflow step logs an error (its messages' trace changes). The sync's
    # job rewrites exactly the hours whose rows changed.
    time.sleep(1.1)  # S3 modification times have whole seconds
    before = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    later = NOW + timedelta(minutes=25)
    messages, steps = TABLES["messages"], TABLES["workflow_executions"]
    with source.connect() as conn:
        clicked = [conn.execute(sa.select(messages.c.message_id).where(
            messages.c.created_at >= source._param(hour), messages.c.message_id.is_not(None),
            messages.c.created_at < source._param(hour + timedelta(hours=1))).limit(1)).scalar_one()
            for hour in (HOURS[1], HOURS[3])]
        conn.execute(messages.update().where(messages.c.message_id.in_(clicked)).values(
            message_status="clicked", message_clicked_at=source._param(later), updated_at=source._param(later)))
        retried = conn.execute(sa.select(messages.c.message_id).where(
            messages.c.message_status == "delivery_failed", messages.c.message_id.is_not(None)).limit(1)).scalar_one()
        conn.execute(messages.update().where(messages.c.message_id == retried).values(
            message_status="delivered", delivery_failure_reason=None, message_delivered_at=source._param(later),
            updated_at=source._param(later)))
        step = conn.execute(sa.select(steps.c.execution_id, steps.c.node_id).where(
            steps.c.status == "info").limit(1)).one()
        conn.execute(steps.update().where(steps.c.execution_id == step.execution_id, steps.c.node_id == step.node_id)
                     .values(status="error", message="vendor timeout", updated_at=source._param(later)))
        # A person's right to erasure: their messages of one hour are deleted from the source.
        erased = conn.execute(sa.select(messages.c.message_id).where(
            messages.c.created_at >= source._param(HOURS[2]), messages.c.message_id.is_not(None),
            messages.c.created_at < source._param(HOURS[3])).limit(2)).scalars().all()
        conn.execute(messages.delete().where(messages.c.message_id.in_(erased)))
        conn.commit()
        changed = {dp: sorted({created.replace(minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
                               for created in conn.execute(sa.select(TABLES[dp].c.created_at).where(
                                   TABLES[dp].c.updated_at == source._param(later))).scalars()})
                   for dp in ("messages", "workflow_executions")}
        changed["messages"] = sorted(set(changed["messages"]) | {HOURS[2]})
    defs = build_definitions(env)
    for data_point, hours in changed.items():
        sync = defs.resolve_job_def("sync_dirty_hours").execute_in_process(
            run_config={"ops": {"rewrite_dirty_hours": {"config": {
                "data_point": data_point, "hours": [hour_key(h) for h in hours]}}}},
            resources=defs.resources)
        assert sync.success

    # The incremental build reads the rewritten files and, of the others, only those modified in
    # the second the first build began (a second write in that second would keep their time).
    with duckdb.connect(str(home / "analytics.duckdb"), read_only=True) as con:
        first_built = con.execute("SELECT min(_built_at) FROM main.int_messages__latest").fetchone()[0]
    unsettled = first_built.replace(microsecond=0, tzinfo=timezone.utc)
    rewritten = [f"day={h:%d}/hour={h:%H}/messages.parquet" for h in changed["messages"]]
    expected = sorted(f"s3://{bucket}/{k}" for k in list_keys(s3, bucket) if k.endswith("/messages.parquet")
                      and (any(k.endswith(r) for r in rewritten) or before[k] >= unsettled))
    assert compiled_files_read({**env, **aws_env}, tmp_path / "compiled") == expected
    assert len(expected) < len(HOURS)
    assert all(any(e.endswith(r) for e in expected) for r in rewritten)

    incremental = build_models(env)
    assert incremental.success
    assert_models_equal_source(home / "analytics.duckdb", source)  # the erased messages are gone too
    assert_mart_summaries(incremental, home / "analytics.duckdb", source)  # of the whole tables, not the changes
    with duckdb.connect(str(home / "analytics.duckdb"), read_only=True) as con:
        for table in ("int_messages__latest", "messages"):  # message_trace: compared with a full build below
            assert con.execute(f"SELECT count(*) FROM main.{table} WHERE message_id IN (SELECT unnest(?))",
                               [erased]).fetchone()[0] == 0, table

    # A full rebuild from the files (through the CLI) gives exactly the same tables.
    full_home = tmp_path / "full"
    done = notif_export_dbt({**env, "NOTIF_EXPORT_HOME": str(full_home)}, "build", "--full-refresh")
    assert done.returncode == 0, done.stdout[-3000:]
    assert table_contents(full_home / "analytics.duckdb") == table_contents(home / "analytics.duckdb")

    # Marts built before they kept a watermark (an older version's tables) are recomputed in full.
    with duckdb.connect(str(home / "analytics.duckdb")) as con:
        for mart in ("delivery_hourly", "delivery_daily", "error_events", "message_trace", "int_execution_outcomes"):
            con.execute(f"ALTER TABLE main.{mart} DROP COLUMN _built_at")
    assert build_models(env).success  # and nothing changed in the bucket for the latest-state tables
    assert table_contents(full_home / "analytics.duckdb") == table_contents(home / "analytics.duckdb")

    # A build's tests check the rows it wrote; `dbt test` checks every row. A row broken behind
    # dbt's back (a key twice) is found by the latter only.
    with duckdb.connect(str(home / "analytics.duckdb")) as con:
        con.execute("INSERT INTO main.int_messages__latest SELECT * FROM main.int_messages__latest LIMIT 1")
    built = notif_export_dbt(env, "build", "--select", "int_messages__latest")
    assert built.returncode == 0, built.stdout[-3000:]
    tested = notif_export_dbt(env, "test", "--select", "int_messages__latest")
    assert tested.returncode == 1 and "FAIL 1 unique_int_messages__latest_message_key" in tested.stdout


@pytest.mark.parametrize("target, dialect", [("bigquery", "with offset"), ("athena", "with ordinality")])
def test_warehouse_targets_compile(target, dialect, tmp_path):
    env = {"NOTIF_EXPORT_HOME": str(tmp_path), "NOTIF_EXPORT_DBT_TARGET": target, "NOTIF_EXPORT_LAYOUT": "per_type",
           # compiling opens no connection, but the BigQuery client wants some credentials
           "NOTIF_EXPORT_BIGQUERY_METHOD": "oauth-secrets", "NOTIF_EXPORT_BIGQUERY_TOKEN": "offline",
           "NOTIF_EXPORT_BIGQUERY_PROJECT": "my-project", "NOTIF_EXPORT_ATHENA_STAGING_DIR": "s3://athena-results/"}
    done = notif_export_dbt(env, "compile", "--vars", "{offline: true}", "--no-populate-cache",
                            "--target-path", str(tmp_path / "target"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    compiled = {p.name: p.read_text() for p in (tmp_path / "target").rglob("*.sql")}
    assert {"message_trace.sql", "delivery_daily.sql", "int_messages__latest.sql", "errors_hourly.sql"} <= set(compiled)
    assert dialect in compiled["int_request_errors__unnested.sql"]
    assert "stg_export_files.sql" not in compiled  # file listing is DuckDB's alone


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_a_messages_only_export_builds_before_and_after_its_first_files(source, source_url, bucket, aws_env, s3,
                                                                       tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(home))
    env = export_env(source_url, bucket, aws_env, NOTIF_EXPORT_HOME=str(home), NOTIF_EXPORT_DATA_POINTS="messages")

    # Before the first file: every model is built, empty, with the columns the files will bring.
    done = notif_export_dbt(env, "build")
    assert done.returncode == 0, done.stdout[-3000:]
    before = table_contents(home / "analytics.duckdb")
    assert {"int_messages__latest", "delivery_hourly", "message_trace", "errors_hourly"} <= set(before)
    assert all(len(contents) == 1 for contents in before.values())  # the column list, no rows

    # The messages' files appear (the only data point exported) and the next, incremental, build
    # picks them up; the tests of the models without requests or executions warn at most.
    Simulator(source, seed=23, mix=TrafficMix(requests_per_hour=60)).history(2, NOW)
    assert materialize(env, HOURS[-3:], selection=["messages"]).success
    assert {k.rsplit("/", 1)[1] for k in list_keys(s3, bucket)} == {"messages.parquet"}
    built = build_models(env)
    assert built.success
    assert all(c.passed or c.severity == dg.AssetCheckSeverity.WARN for c in built.get_asset_check_evaluations())
    messages = source_state(source, "messages")
    assert mart_state(home / "analytics.duckdb", "messages") == messages
    with duckdb.connect(str(home / "analytics.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sum(messages) FROM main.delivery_hourly").fetchone()[0] == len(messages)
        assert con.execute("SELECT count(*), count(request_status), count(execution_outcome) FROM main.message_trace"
                           ).fetchone() == (len(messages), 0, 0)
        assert con.execute("SELECT (SELECT count(*) FROM main.requests) + (SELECT count(*) FROM main.workflow_executions)"
                           ).fetchone()[0] == 0

    # The same tables as a full build from the files.
    full_home = tmp_path / "full"
    done = notif_export_dbt({**env, "NOTIF_EXPORT_HOME": str(full_home)}, "build", "--full-refresh")
    assert done.returncode == 0, done.stdout[-3000:]
    assert table_contents(full_home / "analytics.duckdb") == table_contents(home / "analytics.duckdb")
