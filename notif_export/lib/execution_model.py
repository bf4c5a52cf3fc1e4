"""The platform's execution model: what a trigger starts and what follows it.

A workflow run writes its step logs (`workflow_executions`) and one message per channel of each
send node (`messages`). Every message gets its whole lifecycle when it is created (delivery
seconds to minutes later, seen and clicked hours or days later, vendor fallback after a
failure); the part of it that is already in the past is applied at once and the rest waits in
the model's own table (`sim_message_schedule`, beside the source's tables and no part of them)
until `advance` reaches its time. No timestamp is ever later than the clock, so a sync never
sees rows from the future.

Shared by the simulator (`notif_export.dev.simulator`, made-up traffic) and the intake service
(`notif_export.intake`, real API calls): both hand each request to `execution` and `message`.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from notif_export.lib.contract import MESSAGES
from notif_export.lib.source import TABLES, SourceDatabase

# workflow slug -> nodes after the trigger: (node_type, channels for send nodes)
WORKFLOWS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "order-confirmation": [("send_multi_channel", ("email", "inbox", "androidpush"))],
    "password-reset": [("send_email", ("email",))],
    "otp-login": [("send_sms", ("sms",)), ("send_multi_channel", ("whatsapp",))],
    "payment-failed": [("delay", ()), ("branch", ()), ("send_multi_channel", ("email", "sms"))],
    "comment-mention": [("batch", ()), ("send_multi_channel", ("inbox", "iospush", "slack"))],
    "weekly-digest": [("digest", ()), ("send_email", ("email",))],
    "shipping-update": [("webhook", ()), ("send_multi_channel", ("sms", "webpush", "whatsapp"))],
    "incident-alert": [("send_multi_channel", ("slack", "ms_teams", "email"))],
}
EVENTS = {"CART_ABANDONED": "payment-failed", "NEW_COMMENT": "comment-mention", "ORDER_SHIPPED": "shipping-update"}
VENDORS: dict[str, list[str]] = {
    "email": ["sendgrid", "ses", "mailgun"],
    "sms": ["twilio", "msg91"],
    "whatsapp": ["gupshup", "twilio"],
    "inbox": ["suprsend"],
    "androidpush": ["fcm"],
    "iospush": ["apns"],
    "webpush": ["vapid"],
    "slack": ["slack"],
    "ms_teams": ["ms_teams"],
}
# Channels whose messages can be seen and clicked (email, inbox, push, whatsapp).
ENGAGING = {"email", "inbox", "androidpush", "iospush", "webpush", "whatsapp"}
# Probability that a delivered message is seen, and that a seen one is clicked.
SEEN_RATE = {"email": 0.45, "inbox": 0.6, "androidpush": 0.35, "iospush": 0.35, "webpush": 0.2, "whatsapp": 0.8}
CLICK_RATE = 0.25
DELIVERY_FAILURE_RATE = 0.04
FAILURE_REASONS = {
    "email": ["mailbox full", "hard bounce: address does not exist", "blocked as spam"],
    "sms": ["invalid number", "carrier rejected", "DND number"],
    "whatsapp": ["user not on whatsapp", "template not approved"],
    "androidpush": ["token expired"], "iospush": ["BadDeviceToken"], "webpush": ["subscription gone"],
    "slack": ["channel_not_found"], "ms_teams": ["webhook disabled"], "inbox": ["subscriber not found"],
}


# The simulator's scheduling state, in its own table: each message's next status change and the
# ones after it, so that `simulate --live` moves statuses on hours or days after the row was
# created. Keyed by the contract's message_key (the coalesces as in the source's unique index), so
# that `advance` finds each message through that index. A row per message with changes to come.
SCHEDULE_KEY = ("execution_id", "recipient_distinct_id", "node_id", "channel_slug", "channel_value")
schedule_metadata = sa.MetaData()
schedule_table = sa.Table(
    "sim_message_schedule",
    schedule_metadata,
    sa.Column("execution_id", sa.Text, nullable=False),  # coalesce(wf_execution_id, broadcast_execution_id)
    sa.Column("recipient_distinct_id", sa.Text, nullable=False),
    sa.Column("node_id", sa.Text, nullable=False),
    sa.Column("channel_slug", sa.Text, nullable=False),
    sa.Column("channel_value", sa.Text, nullable=False),  # coalesce(channel_value, '')
    sa.Column("next_event_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("pending_events", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    sa.PrimaryKeyConstraint(*SCHEDULE_KEY),
    sa.Index("ix_sim_message_schedule_next_event_at", "next_event_at"),
)


@dataclass
class Batch:
    requests: list[dict] = field(default_factory=list)
    workflow_executions: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    # The simulator's own rows for `schedule_table`, not source rows.
    schedule: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in TABLES}


def _ts(value: datetime) -> str:
    return value.isoformat()


class ExecutionModel:
    """Workflow runs and messages for the requests of one workspace, from a random source."""

    def __init__(self, source: SourceDatabase, rng: random.Random, workspace_key: str):
        self.source = source
        self.rng = rng
        self.workspace_key = workspace_key
        self._schedule_created = False

    # ---- ids -------------------------------------------------------------------------------
    def random_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def random_hex(self, n: int = 24) -> str:
        return f"{self.rng.getrandbits(n * 4):0{n}x}"

    def execution(self, batch: Batch, exec_id: str, recipient: str, tenant: str, key: str,
                  slug: str, data: dict, t: datetime, now: datetime) -> None:
        rng = self.rng
        parent = recipient if "/" in recipient else None
        common = {
            "workspace_key": self.workspace_key, "created_at": t, "execution_id": exec_id,
            "recipient_distinct_id": recipient, "tenant_id": tenant, "idempotency_key": key,
            "parent_object_execution_id": self.random_hex(26) if parent else None, "parent_object": parent,
            "workflow_slug": slug, "workflow_version": f"v{rng.randint(1, 9)}",
        }

        def log(offset: float, node_id: str, name: str, node_type: str, stage: str, status: str,
                message: str, properties: dict) -> None:
            batch.workflow_executions.append({
                **common, "updated_at": min(t + timedelta(seconds=offset), now), "node_id": node_id,
                "node_name": name, "node_type": node_type, "execution_stage": stage, "status": status,
                "message": message, "properties": json.dumps(properties),
            })

        log(0.02, "workflow", "Workflow", "workflow", "triggered", "info", "workflow triggered", {"data": data})
        send_at = 0.3
        for i, (node_type, channels) in enumerate(WORKFLOWS[slug], start=1):
            node_id = f"{node_type}-{i}"
            offset = 0.1 * i
            if node_type == "webhook" and rng.random() < 0.05:
                log(offset, node_id, "Fetch tracking", node_type, "failed", "error",
                    "webhook returned 404", {"url": "https://api.example.com/track", "status_code": 404})
                return
            if node_type.startswith("send"):
                warning = rng.random() < 0.03
                log(offset, node_id, f"Send {'/'.join(channels)}", node_type, "completed",
                    "warning" if warning else "info",
                    "variable 'data.customer.name' could not be resolved" if warning else "sent to channels",
                    {"channels": list(channels)})
                for channel in channels:
                    self.message(batch, t + timedelta(seconds=send_at), now, {
                        **{k: common[k] for k in ("recipient_distinct_id", "tenant_id", "idempotency_key",
                                                   "parent_object", "parent_object_execution_id", "workflow_slug")},
                        "wf_execution_id": exec_id, "broadcast_execution_id": None, "node_id": node_id,
                        "node_name": f"Send {'/'.join(channels)}", "node_type": node_type,
                        "template_slug": f"{slug}-{channel}",
                    }, channel)
            else:
                props = {"delay": {"delay_seconds": 600}, "batch": {"window_seconds": 300, "batched": rng.randint(1, 8)},
                         "digest": {"schedule": "weekly"}, "branch": {"taken": rng.choice(["paid", "unpaid"])},
                         "webhook": {"url": "https://api.example.com/track", "status_code": 200}}[node_type]
                log(offset, node_id, node_type.title(), node_type, "completed", "info", f"{node_type} completed", props)
        log(0.5, "workflow-end", "Workflow end", "workflow", "completed", "info", "workflow completed", {})

    def message(self, batch: Batch, t: datetime, now: datetime, fields: dict, channel: str) -> None:
        rng = self.rng
        t = min(t, now)
        vendor = rng.choice(VENDORS[channel])
        recipient = fields["recipient_distinct_id"]
        channel_value = {
            "email": f"{recipient.replace('/', '.')}@example.com", "sms": f"+91{rng.randrange(10**9, 10**10)}",
            "whatsapp": f"+55{rng.randrange(10**9, 10**10)}", "slack": "#alerts", "ms_teams": "ops-team",
            "androidpush": f"fcm:{self.random_hex(20)}", "iospush": f"apns:{self.random_hex(20)}", "webpush": f"vapid:{self.random_hex(20)}",
        }.get(channel)  # inbox messages go to the subscriber, with no channel address
        row = {
            **dict.fromkeys(MESSAGES.columns),
            "workspace_key": self.workspace_key, "created_at": t, "updated_at": t, **fields,
            "template_name": fields["template_slug"].replace("-", " ").title(),
            "message_id": None, "message_status": "triggered", "message_triggered_at": t,
            "message_delivered_at": None, "message_seen_at": None, "message_clicked_at": None,
            "execution_failure_reason": None, "delivery_failure_reason": None, "note": None,
            "message_id_by_vendor": None, "vendor_fallback_applicable": "false", "vendor_fallback_level": "0",
            "vendor_nickname": f"{vendor.title()} primary", "vendor_slug": f"{vendor}-{channel}",
            "is_smart": "true" if rng.random() < 0.1 else "false", "success_metric": None,
            "success_achieved_at": None, "wait_time_in_seconds": None, "channel_slug": channel,
            "channel_value": channel_value, "webhook_data": None,
        }
        if row["is_smart"] == "true":
            row["success_metric"], row["wait_time_in_seconds"] = "seen", str(rng.choice([300, 900, 3600]))
        if rng.random() < 0.01:  # execution error: no message id, nothing more happens
            row["message_status"] = "delivery_failed"
            row["execution_failure_reason"] = json.dumps({"severity": "error", "reason": f"no {channel} found for recipient"})
            self._with_state(batch, row, [], now)
            return
        row["message_id"] = self.random_hex(32)
        row["message_id_by_vendor"] = f"{vendor}-{self.random_hex(12)}"
        self._with_state(batch, row, self._lifecycle(row, t, channel, vendor), now)

    def _lifecycle(self, row: dict, t: datetime, channel: str, vendor: str) -> list[tuple[datetime, dict]]:
        """The row's later changes: (when, columns set)."""
        rng = self.rng
        events: list[tuple[datetime, dict]] = []
        at = t + timedelta(seconds=rng.lognormvariate(1.5, 1.2))  # seconds to minutes
        if rng.random() < DELIVERY_FAILURE_RATE:
            events.append((at, {"message_status": "delivery_failed",
                                "delivery_failure_reason": rng.choice(FAILURE_REASONS[channel])}))
            fallbacks = [v for v in VENDORS[channel] if v != vendor]
            if not fallbacks or rng.random() < 0.5:
                return events
            vendor = fallbacks[0]
            at += timedelta(seconds=rng.uniform(1, 30))
            events.append((at, {"message_status": "triggered", "delivery_failure_reason": None,
                                "vendor_fallback_applicable": "true", "vendor_fallback_level": "1",
                                "vendor_nickname": f"{vendor.title()} fallback", "vendor_slug": f"{vendor}-{channel}",
                                "message_id_by_vendor": f"{vendor}-{self.random_hex(12)}", "message_triggered_at": _ts(at)}))
            at += timedelta(seconds=rng.lognormvariate(1.5, 1.0))
        events.append((at, {"message_status": "delivered", "message_delivered_at": _ts(at)}))
        if channel in ENGAGING and rng.random() < SEEN_RATE[channel]:
            at += timedelta(seconds=rng.lognormvariate(8.5, 1.6))  # minutes to days, median ~80 min
            seen = {"message_status": "seen", "message_seen_at": _ts(at)}
            if row["is_smart"] == "true":
                seen["success_achieved_at"] = _ts(at)
            events.append((at, seen))
            if rng.random() < CLICK_RATE:
                at += timedelta(seconds=rng.lognormvariate(4, 1.5))
                events.append((at, {"message_status": "clicked", "message_clicked_at": _ts(at)}))
            elif channel == "inbox" and rng.random() < 0.5:
                at += timedelta(seconds=rng.lognormvariate(6, 1.5))
                events.append((at, {"message_status": rng.choice(["read", "archived"])}))
        elif channel in ("androidpush", "iospush") and rng.random() < 0.2:
            at += timedelta(seconds=rng.lognormvariate(7, 1.5))
            events.append((at, {"message_status": "dismissed"}))
        return events

    @staticmethod
    def _with_state(batch: Batch, row: dict, events: list[tuple[datetime, dict]], now: datetime) -> None:
        """Add the row with the events up to `now` applied; schedule the rest for `advance`."""
        pending = []
        for when, changes in events:
            if when <= now:
                row.update(_decode(changes))
                row["updated_at"] = when
            else:
                pending.append([_ts(when), changes])
        batch.messages.append(row)
        if pending:
            batch.schedule.append({**_schedule_key(row), "next_event_at": datetime.fromisoformat(pending[0][0]),
                                   "pending_events": pending})

    # ---- writing -----------------------------------------------------------------------------
    def create_schedule(self, conn: sa.Connection) -> None:
        """The simulator's table, once per simulator; harmless when it exists."""
        if not self._schedule_created:
            schedule_metadata.create_all(conn)
            self._schedule_created = True

    def write(self, batch: Batch) -> dict[str, int]:
        with self.source.connect() as conn:
            self.write_rows(conn, batch)
            conn.commit()
        return batch.counts()

    def write_rows(self, conn: sa.Connection, batch: Batch) -> None:
        """The batch's rows and schedule, in the caller's transaction."""
        self.create_schedule(conn)
        if conn.dialect.driver == "psycopg":
            _copy_batch(conn, batch)
            return
        for name in TABLES:
            for chunk in _chunks(getattr(batch, name), 5000):
                conn.execute(TABLES[name].insert(), chunk)
        insert = _schedule_upsert(conn.dialect.name)
        for chunk in _chunks(batch.schedule, 5000):
            conn.execute(insert, chunk)

    def advance(self, now: datetime, limit: int = 20_000) -> int:
        """Apply every pending status change due by `now`; returns the rows changed."""
        table, schedule = TABLES["messages"], schedule_table
        due = (
            sa.select(*(schedule.c[c] for c in SCHEDULE_KEY), schedule.c.pending_events)
            .where(schedule.c.next_event_at <= self.source._param(now))
            .order_by(schedule.c.next_event_at)
            .limit(limit)
            # Several advancers at once (one per intake process) each take due rows no other holds;
            # SQLite has no row locks and one writer at a time anyway.
            .with_for_update(skip_locked=True)
        )
        changed = 0
        with self.source.connect() as conn:
            self.create_schedule(conn)
            groups: dict[tuple, list[dict]] = defaultdict(list)
            rescheduled: list[dict] = []
            finished: list[dict] = []
            for *key_values, pending in conn.execute(due):
                key = {f"k_{c}": v for c, v in zip(SCHEDULE_KEY, key_values)}
                changes: dict = {}
                updated_at = None
                while pending and datetime.fromisoformat(pending[0][0]) <= now:
                    when, delta = pending.pop(0)
                    changes.update(_decode(delta))
                    updated_at = datetime.fromisoformat(when)
                changes["updated_at"] = updated_at
                groups[tuple(sorted(changes))].append({**key, **changes})
                if pending:
                    rescheduled.append({**key, "next_event_at": datetime.fromisoformat(pending[0][0]),
                                        "pending_events": pending})
                else:
                    finished.append(key)
            # One statement per set of changed columns, each for many rows; rows found through
            # the source's unique index on the message_key.
            for columns, rows in groups.items():
                _update_rows(conn, table, _message_key, columns, rows)
                changed += len(rows)
            if rescheduled:
                _update_rows(conn, schedule, _schedule_key_of, ("next_event_at", "pending_events"), rescheduled)
            if finished:
                _delete_rows(conn, schedule, _schedule_key_of, finished)
            conn.commit()
        return changed


def create_schedule(source: SourceDatabase) -> None:
    """The status-change table, before several processes write to it (creating it at once would race)."""
    schedule_metadata.create_all(source.engine)


def _schedule_key(row: dict) -> dict:
    """A message's key as the schedule stores it: the message_key with the source index's coalesces."""
    execution_id = row["wf_execution_id"] if row["wf_execution_id"] is not None else row["broadcast_execution_id"]
    return {"execution_id": execution_id, "recipient_distinct_id": row["recipient_distinct_id"],
            "node_id": row["node_id"], "channel_slug": row["channel_slug"],
            "channel_value": row["channel_value"] if row["channel_value"] is not None else ""}


def _message_key(table: sa.Table, key: Mapping[str, sa.ColumnElement]) -> list:
    """The message whose key is in `key` (k_* values), in the unique index's own expressions
    (the '' a literal, as in the index, so that the planner uses it)."""
    return [
        sa.func.coalesce(table.c.wf_execution_id, table.c.broadcast_execution_id) == key["k_execution_id"],
        table.c.recipient_distinct_id == key["k_recipient_distinct_id"],
        table.c.node_id == key["k_node_id"],
        table.c.channel_slug == key["k_channel_slug"],
        sa.func.coalesce(table.c.channel_value, sa.literal_column("''")) == key["k_channel_value"],
    ]


def _schedule_key_of(table: sa.Table, key: Mapping[str, sa.ColumnElement]) -> list:
    return [table.c[c] == key[f"k_{c}"] for c in SCHEDULE_KEY]


KeyOf = Callable[[sa.Table, Mapping[str, sa.ColumnElement]], list]


def _update_rows(conn: sa.Connection, table: sa.Table, key_of: KeyOf, columns: Sequence[str],
                 rows: list[dict]) -> None:
    """Set `columns` of each row found by `key_of` from `rows` (k_* keys and the new values)."""
    if conn.dialect.name != "postgresql":
        binds = _Binds()
        conn.execute(table.update().where(*key_of(table, binds)).values({c: sa.bindparam(c) for c in columns}), rows)
        return
    values = _recordset(table, columns)
    conn.execute(table.update().where(*key_of(table, values.c)).values({c: values.c[c] for c in columns}),
                 {"rows": _json_rows(rows)})


def _delete_rows(conn: sa.Connection, table: sa.Table, key_of: KeyOf, keys: list[dict]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(table.delete().where(*key_of(table, _Binds())), keys)
        return
    conn.execute(table.delete().where(*key_of(table, _recordset(table, ()).c)), {"rows": _json_rows(keys)})


class _Binds(dict):
    """A bound parameter for any name: an executemany's values, row by row."""

    def __missing__(self, name: str) -> sa.BindParameter:
        return sa.bindparam(name)


def _recordset(table: sa.Table, columns: Sequence[str]) -> sa.TableValuedAlias:
    """The rows' k_* keys as text and their `columns` typed as in `table`, as a JSON recordset."""
    return _json_recordset(*(sa.column(f"k_{c}", sa.Text) for c in SCHEDULE_KEY),
                           *(sa.column(c, table.c[c].type) for c in columns))


def _json_recordset(*columns: sa.ColumnClause) -> sa.TableValuedAlias:
    """PostgreSQL: the rows of one JSON array parameter (`rows`) as a table of `columns`: one
    statement for all of them, where an executemany is a statement per row (on the server, and
    in Python for SQLAlchemy and the driver)."""
    return (sa.func.jsonb_to_recordset(sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSONB))
            .table_valued(*columns).render_derived(name="v", with_types=True))


def _json_rows(rows: list[dict]) -> str:
    return json.dumps(rows, default=datetime.isoformat)


def _schedule_upsert(dialect: str) -> sa.Insert:
    """Insert into the schedule; a key it already holds (the source's tables were emptied and
    refilled with the same seed, the simulator's were not) takes the new message's schedule."""
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        return schedule_table.insert()
    stmt = module.insert(schedule_table)
    return stmt.on_conflict_do_update(
        index_elements=list(SCHEDULE_KEY),
        set_={"next_event_at": stmt.excluded.next_event_at, "pending_events": stmt.excluded.pending_events},
    )


def _decode(changes: dict) -> dict:
    return {k: datetime.fromisoformat(v) if k.endswith("_at") and k != "success_achieved_at" and v else v
            for k, v in changes.items()}


def _copy_batch(conn: sa.Connection, batch: Batch) -> None:
    """The batch through PostgreSQL's COPY, in the connection's transaction: a statement per
    table, where an executemany costs PostgreSQL (and the caller, in Python) one INSERT per row.
    The schedule is an upsert: one statement over all its rows, passed as one JSON array."""
    if not conn.in_transaction():
        # The COPYs go through the driver: without a transaction of SQLAlchemy's, the caller's
        # commit would do nothing, and the rows would be rolled back when the connection closes.
        conn.begin()
    for name, table in TABLES.items():
        _copy_rows(conn, table, getattr(batch, name))
    if batch.schedule:
        conn.exec_driver_sql(_schedule_upsert_sql(), {"rows": _json_rows(batch.schedule)})


@functools.cache
def _schedule_upsert_sql() -> str:
    """The schedule's upsert over one JSON array of its rows, compiled once: built and compiled
    at every commit, it cost the intake more than the COPYs."""
    rows = _json_recordset(*(sa.column(c.name, c.type) for c in schedule_table.c))
    upsert = _schedule_upsert("postgresql").from_select([c.name for c in schedule_table.c], sa.select(rows))
    return str(upsert.compile(dialect=postgresql.psycopg.dialect()))


def _copy_rows(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """`rows` (dicts by column name, the JSON columns as Python values) into `table`."""
    # Here, not at import: every `notif-export` command imports this module, and the connection's
    # driver has loaded psycopg already.
    from psycopg.types.json import Jsonb

    if not rows:
        return
    json_columns = {c.name for c in table.c if isinstance(c.type, sa.JSON)}
    names = [c.name for c in table.c]
    columns = ", ".join(f'"{n}"' for n in names)
    with conn.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            values = [row.get(n) for n in names]
            copy.write_row([Jsonb(v) if v is not None and n in json_columns else v for n, v in zip(names, values)])


def _chunks(rows: list, size: int) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]

