"""The intake's writers: calls in, rows in the source, answers out, with group commit.

Request handlers hand their calls to the writer threads (one on SQLite, two on PostgreSQL); a
writer takes every call waiting and writes them in one transaction (each call's `requests` row
together with what its workflow writes, so that a call is in the source entirely or not at
all), then answers them all. Under load a commit carries hundreds of calls; alone, a call is
committed at once. Another thread applies the execution model's due status changes
(`ExecutionModel.advance`) every second, as the live simulator does; with several service
processes, each one's advancer takes the due changes no other holds.

Idempotency: a call whose `$idempotency_key` is already in the source (the source keeps one
`requests` row per key) gets the first call's answer and starts nothing; when two writers take
the same new key at once, the second one's transaction fails on the key and is written again."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import random
import threading
from collections.abc import Callable
from datetime import datetime, timezone

import psycopg
import sqlalchemy as sa

from notif_export.intake.calls import Call, error_body
from notif_export.lib.execution_model import Batch, ExecutionModel, create_schedule
from notif_export.lib.source import TABLES, SourceDatabase

log = logging.getLogger(__name__)

MAX_CALLS_PER_COMMIT = 1000
ADVANCE_EVERY_SECONDS = 1.0
ADVANCE_ROWS_PER_COMMIT = 1000
UNAVAILABLE = (503, error_body("unavailable", "the source database did not take the call; try again"))

Answer = tuple[int, dict]
# Another writer committed one of the keys first: SQLAlchemy's error, or psycopg's from a COPY.
DUPLICATE_KEY = (sa.exc.IntegrityError, psycopg.errors.IntegrityError)


class Writer:
    def __init__(self, source: SourceDatabase, workspace_key: str, clock: Callable[[], datetime] | None = None):
        self.source = source
        self.model = ExecutionModel(source, random.Random(), workspace_key)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # PostgreSQL: two writers, so that one builds and sends its calls while the other waits
        # for its commit to reach the disk (PostgreSQL flushes concurrent commits together).
        # SQLite has one writer at a time anyway.
        self._threads = [threading.Thread(target=self._run, name=f"intake-writer-{n}", daemon=True)
                         for n in range(2 if source.is_postgresql else 1)]
        self._advancer = threading.Thread(target=self._advance, name="intake-advance", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        # The status-change table, before both threads use it (two threads creating it at once on
        # PostgreSQL would race).
        create_schedule(self.source)
        for thread in self._threads:
            thread.start()
        self._advancer.start()

    def stop(self) -> None:
        """Write what is queued, then stop."""
        for _ in self._threads:
            self._queue.put(None)
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        self._advancer.join()

    async def submit(self, calls: list[Call]) -> list[Answer]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((calls, loop, future))
        return await future

    # ---- the writer threads -------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            pending = [first] if first else []
            stopping = first is None
            while not stopping and sum(len(p[0]) for p in pending) < MAX_CALLS_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    pending.append(item)
            if pending:
                self._write([p for p in pending if p])

    def _advance(self) -> None:
        """Every second, the status changes now due, a thousand rows per transaction."""
        while not self._stopping.wait(ADVANCE_EVERY_SECONDS):
            try:
                while not self._stopping.is_set() and \
                        self.model.advance(self.clock(), limit=ADVANCE_ROWS_PER_COMMIT) == ADVANCE_ROWS_PER_COMMIT:
                    pass
            except Exception:  # the next round tries again
                log.exception("applying the due message status changes failed")

    def _write(self, pending: list[tuple[list[Call], asyncio.AbstractEventLoop, asyncio.Future]]) -> None:
        calls = [c for p in pending for c in p[0]]
        for attempt in (1, 2):  # a second time when another writer committed one of the keys first
            try:
                answers = self._commit(calls)
                break
            except DUPLICATE_KEY:
                if attempt == 2:
                    log.exception("could not record %d calls", len(calls))
                    answers = [UNAVAILABLE] * len(calls)
            except Exception:
                log.exception("could not record %d calls", len(calls))
                answers = [UNAVAILABLE] * len(calls)
                break
        position = 0
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for batch_calls, loop, future in pending:
            by_loop.setdefault(loop, []).append((future, answers[position:position + len(batch_calls)]))
            position += len(batch_calls)
        for loop, results in by_loop.items():
            loop.call_soon_threadsafe(_resolve, results)

    def _commit(self, calls: list[Call]) -> list[Answer]:
        table = TABLES["requests"]
        keys = list({c.key for c in calls if c.problem is None})
        batch = Batch()
        answers: list[Answer] = []
        with self.source.connect() as conn:
            earlier: dict[str, Answer] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                for key, response in conn.execute(
                        sa.select(table.c.idempotency_key, table.c.response).where(table.c.idempotency_key.in_(chunk))):
                    earlier[key] = _stored_answer(response)
            for call in calls:
                if call.key in earlier:
                    answers.append(earlier[call.key])
                    continue
                call.run(self.model, batch)
                earlier[call.key] = call.answer  # the same key twice in one commit: the first wins
                answers.append(call.answer)
            self.model.write_rows(conn, batch)
            conn.commit()
        return answers


def _resolve(results: list[tuple[asyncio.Future, list[Answer]]]) -> None:
    for future, answers in results:
        if not future.done():
            future.set_result(answers)


def _stored_answer(response: str | None) -> Answer:
    """The answer recorded with a call, as its repeat gets it."""
    try:
        stored = json.loads(response)
        return int(stored["status_code"]), stored["body"]
    except (TypeError, ValueError, KeyError):
        return 202, {"status": "success"}
