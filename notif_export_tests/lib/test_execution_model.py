"""The execution model's later status changes: each applied once, however many apply them."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from notif_export.lib.execution_model import WORKFLOWS, Batch, ExecutionModel, schedule_table
from notif_export.lib.source import TABLES, SourceDatabase

WORKSPACE_KEY = "ws_test_0123456789abcdef"
TRIGGERED_AT = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
ADVANCED_TO = TRIGGERED_AT + timedelta(hours=3)  # some changes due by then, others still to come


def trigger_workflows(source: SourceDatabase) -> None:
    """The same 200 workflow runs every time (a seeded model), their messages' changes scheduled."""
    model = ExecutionModel(source, random.Random(11), WORKSPACE_KEY)
    slugs = sorted(WORKFLOWS)
    batch = Batch()
    for i in range(200):
        model.execution(batch, f"exec-{i}", f"user_{i}", "default", f"key-{i}", slugs[i % len(slugs)], {},
                        TRIGGERED_AT, TRIGGERED_AT)
    with source.connect() as conn:
        model.write_rows(conn, batch)
        conn.commit()


def state(source: SourceDatabase) -> tuple[list, list]:
    """Every message and every change still to come, in a stable order."""
    with source.connect() as conn:
        messages = sorted(tuple(map(repr, r)) for r in conn.execute(sa.select(TABLES["messages"])))
        schedule = sorted(tuple(map(repr, r)) for r in conn.execute(sa.select(schedule_table)))
    return messages, schedule


def test_advancers_at_once_apply_each_change_once_as_one_advancer_does(pg_url):
    """Each intake process runs an advancer: on PostgreSQL each takes the due changes no other
    holds (`FOR UPDATE SKIP LOCKED`), and together they leave the source as one advancer does."""
    source = SourceDatabase(pg_url)
    source.init_schema()
    try:
        trigger_workflows(source)
        changed_by_one = ExecutionModel(source, random.Random(), WORKSPACE_KEY).advance(ADVANCED_TO)
        one = state(source)
        with source.connect() as conn:
            conn.execute(sa.text("TRUNCATE requests, workflow_executions, messages, sim_message_schedule"))
            conn.commit()

        trigger_workflows(source)
        advancers = 4
        start = threading.Barrier(advancers)
        changed: dict[int, int] = {}

        def advance(n: int) -> None:
            model = ExecutionModel(source, random.Random(), WORKSPACE_KEY)
            start.wait()
            while rows := model.advance(ADVANCED_TO, limit=40):  # small rounds, so that they interleave
                changed[n] = changed.get(n, 0) + rows

        threads = [threading.Thread(target=advance, args=(n,), daemon=True) for n in range(advancers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)
        assert changed_by_one > 100 and sum(changed.values()) == changed_by_one
        assert len(changed) > 1, "the advancers took turns instead of working at once"
        assert state(source) == one
        assert one[1], "some changes must still be to come"
    finally:
        source.dispose()


def test_every_write_is_committed_also_one_made_only_of_copies(source):
    """On PostgreSQL the rows go in through COPY on the driver's connection: a batch with no
    status change to schedule (nothing through SQLAlchemy) must be committed all the same."""
    model = ExecutionModel(source, random.Random(5), WORKSPACE_KEY)
    batches = [Batch(), Batch()]
    for n, batch in enumerate(batches):
        model.execution(batch, f"exec-{n}", f"user_{n}", "default", f"key-{n}", "password-reset", {},
                        TRIGGERED_AT, TRIGGERED_AT)
        if n:
            batch.schedule.clear()  # the second batch: its rows only
        model.write(batch)
    with source.connect() as conn:
        written = conn.execute(sa.select(sa.func.count()).select_from(TABLES["workflow_executions"])).scalar()
    assert written == sum(len(b.workflow_executions) for b in batches) > 0
