"""The notification platform's log database: schema, connection and streaming reads of one hour.

SQLite (the default, a file in the local state folder) and PostgreSQL are supported. Reads are
streamed as Arrow record batches in the contract's exact types, so an hour of any size is read in
bounded memory. On PostgreSQL the rows come through ADBC (binary COPY straight into Arrow), which
is several times faster than fetching Python tuples; other databases go through SQLAlchemy.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from notif_export.lib.bad_rows import (
    BadRows,
    Duplicates,
    keyed,
    nested_array,
    text_array,
)
from notif_export.lib.contract import DATA_POINTS, MESSAGES, DataPoint
from notif_export.lib.hours import EPOCH, hour_bounds, hour_spans

BATCH_ROWS = 65_536
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
BATCH_BYTES = 4 << 20
# Set to 0 in the export's PostgreSQL sessions (see `SourceDatabase.read_uri`).
PARALLEL_WORKERS_SETTING = "max_parallel_workers_per_gather"

metadata = sa.MetaData()


def _column(field: pa.Field) -> sa.Column:
    if pa.types.is_timestamp(field.type):
        return sa.Column(field.name, sa.DateTime(timezone=True))
    if pa.types.is_nested(field.type):
        return sa.Column(field.name, sa.JSON().with_variant(JSONB(), "postgresql"))
    return sa.Column(field.name, sa.Text)


def _table(dp: DataPoint, *extra: sa.SchemaItem) -> sa.Table:
    return sa.Table(
        dp.name,
        metadata,
        *(_column(f) for f in dp.schema),
        *extra,
        sa.Index(f"ix_{dp.name}_created_at", "created_at"),
        sa.Index(f"ix_{dp.name}_updated_at", "updated_at"),
    )


requests_table = _table(DATA_POINTS["requests"], sa.PrimaryKeyConstraint("idempotency_key"))
workflow_executions_table = _table(
    DATA_POINTS["workflow_executions"], sa.PrimaryKeyConstraint("execution_id", "node_id")
)
messages_table = _table(MESSAGES)
# The contract's message_key, enforced by the source.
sa.Index(
    "uq_messages_message_key",
    sa.func.coalesce(messages_table.c.wf_execution_id, messages_table.c.broadcast_execution_id),
    messages_table.c.recipient_distinct_id,
    messages_table.c.node_id,
    messages_table.c.channel_slug,
    sa.func.coalesce(messages_table.c.channel_value, ""),
    unique=True,
)

TABLES: dict[str, sa.Table] = {
    "requests": requests_table,
    "workflow_executions": workflow_executions_table,
    "messages": messages_table,
}


class SourceError(RuntimeError):
    """The source database is unreachable or not what we expect; the message says what to fix."""


class SourceUnreachable(SourceError):
    """The database did not answer or refused the connection: worth trying again later."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def conform(columns: Mapping[str, Sequence | pa.Array], schema: pa.Schema, dp: DataPoint,
            bad_rows: BadRows, duplicates: Duplicates | None = None) -> pa.RecordBatch:
    """Build a record batch in the contract's types from column values read from the source,
    applying the bad-row rules (`bad_rows.py`) and counting what they did in `bad_rows`.

    Nested columns arrive as JSON text (ADBC, SQLite); strings as bytes from SQLite (which holds
    whatever bytes were written) and as strings from ADBC (PostgreSQL holds valid UTF-8 only);
    naive timestamps (SQLite) are UTC.
    """
    arrays = []
    invalid_utf8: list[int] = []
    invalid_json: list[int] = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_nested(field.type):
            if isinstance(values, pa.Array):
                values = values.to_pylist()
            arrays.append(nested_array(values, field.type, _decode_json, invalid_json))
        elif isinstance(values, pa.Array):
            arrays.append(values.cast(field.type))
        elif pa.types.is_string(field.type):
            arrays.append(text_array(values, invalid_utf8))
        else:
            arrays.append(pa.array(values, type=field.type))
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    created_at = batch.column("created_at")
    for kind, rows in (("invalid_utf8", invalid_utf8), ("invalid_nested_json", invalid_json)):
        if rows:
            bad_rows.add(kind, created_at.take(sorted(set(rows))))
    mask = keyed(batch, dp)
    if mask is not None:
        bad_rows.add("null_key", created_at.filter(pc.invert(mask)))
        batch = batch.filter(mask)
    if duplicates is not None:
        mask = duplicates.keep(batch)
        if mask is not None:
            bad_rows.add("duplicate_key", batch.column("created_at").filter(pc.invert(mask)))
            batch = batch.filter(mask)
    return batch


def _decode_json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


class SourceDatabase:
    """A connection to the log database, from a SQLAlchemy URL."""

    def __init__(self, url: str):
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise SourceError(
                f"NOTIF_EXPORT_SOURCE_URL is not a database URL ({exc}); expected e.g. "
                "sqlite:///path/source.db or postgresql+psycopg://user@host:5432/db"
            ) from None
        if self.url.get_backend_name() == "sqlite" and self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite: wait for the live simulator's write lock instead of failing at once.
        self.engine = sa.create_engine(self.url, connect_args={"timeout": 30} if self.is_sqlite else {})
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._enforced: dict[str, bool] = {}  # per data point: does the source's unique index hold?

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise SourceUnreachable(
                f"cannot connect to the source database {self.display_url}: {reason}. "
                "Check NOTIF_EXPORT_SOURCE_URL and that the database server is running."
            ) from None

    def init_schema(self) -> None:
        """Create the three tables and their indexes; harmless when they exist."""
        with self.connect() as conn:
            metadata.create_all(conn)
            conn.commit()

    def check_schema(self) -> None:
        with self.connect() as conn:
            missing = [t for t in TABLES if not sa.inspect(conn).has_table(t)]
        if missing:
            raise SourceError(
                f"the source database {self.display_url} has no table {', '.join(missing)}; "
                "run `notif-export source init` (or point NOTIF_EXPORT_SOURCE_URL at the log database)."
            )

    def read_hour(self, dp: DataPoint, hour: datetime, bad_rows: BadRows, slices: int = 1,
                  created_before: datetime | None = None) -> list[Iterator[pa.RecordBatch]]:
        """Every row created in the hour starting at `hour` (and before `created_before`, the
        cutoff of the sync tick or backfill that reads it), latest state, as contract batches;
        the bad rows met are counted in `bad_rows`.

        The hour is cut into `slices` consecutive time ranges, one reader each, so that they can
        be read in parallel (converting PostgreSQL's rows is CPU-bound); their rows in order
        make the hour.
        """
        start, end = hour_bounds(hour)
        end = max(start, min(end, created_before)) if created_before else end
        step = (end - start) / slices
        bounds = [(start + step * i, start + step * (i + 1) if i < slices - 1 else end) for i in range(slices)]
        duplicates = self.duplicates(dp, start, end)  # over the whole hour: a pair may span slices
        return [self.read_range(dp, lo, hi, bad_rows=bad_rows, duplicates=duplicates) for lo, hi in bounds]

    def read_range(self, dp: DataPoint, start: datetime, end: datetime, columns: list[str] | None = None,
                   bad_rows: BadRows | None = None, duplicates: Duplicates | None = None
                   ) -> Iterator[pa.RecordBatch]:
        """The rows created in [start, end), all the contract's columns or only `columns` (with the
        key's), bad rows counted in `bad_rows`. `duplicates` of the range: found here when None."""
        schema = pa.schema([dp.schema.field(c) for c in columns]) if columns else dp.schema
        if start >= end:
            return iter(())
        bad_rows = bad_rows if bad_rows is not None else BadRows()
        duplicates = duplicates if duplicates is not None else self.duplicates(dp, start, end)
        read = self._read_adbc if self.is_postgresql else self._read_sqlalchemy
        bounds = [("created_at", ">=", start), ("created_at", "<", end)]
        return (conform(values, schema, dp, bad_rows, duplicates) for values in read(dp, schema, bounds))

    def read_updated(self, dp: DataPoint, after: datetime | None, until: datetime, bad_rows: BadRows,
                     created_from: datetime | None = None, created_to: datetime | None = None
                     ) -> Iterator[pa.RecordBatch]:
        """The rows with `after` < updated_at <= `until` (and, when given, created in
        [created_from, created_to)), in their current state, as contract batches: the records a
        JSON objects run writes. A range scan of the updated_at index."""
        bounds = [("updated_at", "<=", until)] + ([("updated_at", ">", after)] if after else [])
        if created_from is not None:
            bounds += [("created_at", ">=", created_from), ("created_at", "<", created_to)]
        read = self._read_adbc if self.is_postgresql else self._read_sqlalchemy
        # A row without created_at belongs to no hour: left out as everywhere (`rows_without_hour`).
        return (conform(values, dp.schema, dp, bad_rows) for values in read(dp, dp.schema, bounds))

    def duplicates(self, dp: DataPoint, start: datetime, end: datetime) -> Duplicates | None:
        """The keys held by several rows of one hour in [start, end); None when the source's own
        unique index rules them out (the usual case: no extra read)."""
        if self._key_enforced(dp):
            return None
        keys = ["created_at", "updated_at", *dp.unique_key]
        schema = pa.schema([dp.schema.field(c) for c in keys])
        read = self._read_adbc if self.is_postgresql else self._read_sqlalchemy
        bounds = [("created_at", ">=", start), ("created_at", "<", end)]
        batches = [conform(values, schema, dp, BadRows()) for values in read(dp, schema, bounds)]
        return Duplicates(pa.Table.from_batches(batches, schema=schema), dp)

    def _key_enforced(self, dp: DataPoint) -> bool:
        if dp.name not in self._enforced:
            table = TABLES[dp.name]
            with self.connect() as conn:
                if table.primary_key.columns:
                    pk = sa.inspect(conn).get_pk_constraint(dp.name)["constrained_columns"]
                    # SQLite lets NULLs into a text primary key, but NULL keys are skipped anyway.
                    enforced = pk == [c.name for c in table.primary_key.columns]
                else:  # an expression index, which SQLAlchemy does not reflect on SQLite
                    names = [i.name for i in table.indexes if i.unique]
                    query = ("SELECT name FROM sqlite_master WHERE type = 'index' AND name = :name" if self.is_sqlite
                             else "SELECT indexname FROM pg_indexes WHERE indexname = :name")
                    enforced = all(conn.execute(sa.text(query), {"name": n}).first() for n in names)
            self._enforced[dp.name] = enforced
        return self._enforced[dp.name]

    def _read_sqlalchemy(self, dp: DataPoint, schema: pa.Schema, bounds: list[tuple[str, str, datetime]],
                         batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, Sequence]]:
        """The rows within `bounds` ((column, operator, timestamp), all of them), a batch at a time."""
        table = TABLES[dp.name]
        # Text as bytes: SQLite returns whatever bytes were written, and one invalid UTF-8 value
        # would fail the whole read in the driver; `conform` checks them a batch at a time.
        query = sa.select(*(
            table.c[f.name] if pa.types.is_timestamp(f.type) else sa.cast(table.c[f.name], sa.LargeBinary)
            for f in schema
        )).where(table.c.created_at.is_not(None),
                 *(_COMPARE[op](table.c[column], self._param(value)) for column, op, value in bounds))
        with self.connect() as conn:
            result = conn.execution_options(yield_per=batch_rows).execute(query)
            for rows in result.partitions():
                yield dict(zip(schema.names, zip(*rows)))

    def _read_adbc(self, dp: DataPoint, schema: pa.Schema, bounds: list[tuple[str, str, datetime]]
                   ) -> Iterator[dict[str, pa.Array]]:
        # The driver's low-level API: its DB-API module imports pandas and polars (65 MB, 0.3 s).
        import adbc_driver_manager
        import adbc_driver_postgresql
        from adbc_driver_manager._reader import AdbcRecordBatchReader

        select = ", ".join(
            f'"{f.name}"::text' if pa.types.is_nested(f.type) else f'"{f.name}"' for f in schema
        )
        # The bounds are our own columns, operators and formatted datetimes, never user input.
        where = " AND ".join(f"\"{column}\" {op} '{value.isoformat()}'::timestamptz"
                             for column, op, value in bounds)
        query = f'SELECT {select} FROM "{dp.name}" WHERE created_at IS NOT NULL AND {where}'
        uri = self.read_uri()
        database = None
        try:
            database = adbc_driver_postgresql.connect(uri)
            conn = adbc_driver_manager.AdbcConnection(database)
        except Exception as exc:  # ADBC raises its own error classes; the URL may hold a password
            if database is not None:
                database.close()
            raise SourceUnreachable(
                f"cannot connect to the source database {self.display_url}: "
                f"{str(exc).replace(uri, self.display_url).splitlines()[0]}. Check "
                "NOTIF_EXPORT_SOURCE_URL and that the database server is running."
            ) from None
        with database, conn, adbc_driver_manager.AdbcStatement(conn) as statement:
            # Batches of ~4 MB: row groups big enough to compress well, memory flat.
            statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            statement.set_sql_query(query)
            stream, _ = statement.execute_query()
            # The DB-API module's reader: an error mid-stream is raised as ADBC's error class.
            reader = AdbcRecordBatchReader._import_from_c(stream.address)
            try:
                for batch in reader:
                    yield {name: batch.column(name) for name in schema.names}
            finally:
                reader.close()

    def read_uri(self) -> str:
        """The libpq URI of the export's reads (ADBC), with PostgreSQL's parallel query turned off
        for them: an hour is already read by two sessions, and a Gather funnels every row through
        the one backend that encodes the COPY anyway, so parallel workers only add processes on
        the source (and made the benchmark hour about 7 % slower when the planner chose them).
        The URL's own `options` are kept."""
        options = " ".join(filter(None, (self.url.query.get("options"), f"-c {PARALLEL_WORKERS_SETTING}=0")))
        query = urlencode({**self.url.query, "options": options}, doseq=True, quote_via=quote)  # libpq: no "+"
        return self.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False) + "?" + query

    def _param(self, value: datetime) -> datetime:
        # SQLite stores naive UTC timestamps; compare like with like so the index is used.
        return value.astimezone(timezone.utc).replace(tzinfo=None) if self.is_sqlite else value

    def max_updated_at(self, dp: DataPoint) -> datetime | None:
        table = TABLES[dp.name]
        with self.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(table.c.updated_at))).scalar()
        return _parse_ts(value)

    def hour_stats(self, dp: DataPoint, hour: datetime, created_before: datetime | None = None
                   ) -> tuple[int, datetime | None]:
        """Row count and newest updated_at of the rows created in the hour (before the cutoff)."""
        table = TABLES[dp.name]
        start, end = hour_bounds(hour)
        end = min(end, created_before) if created_before else end
        query = sa.select(sa.func.count(), sa.func.max(table.c.updated_at)).where(
            table.c.created_at >= self._param(start), table.c.created_at < self._param(end)
        )
        with self.connect() as conn:
            if self.is_postgresql:  # it runs beside the hour's readers: no parallel workers either
                conn.exec_driver_sql(f"SET LOCAL {PARALLEL_WORKERS_SETTING} = 0")
            count, newest = conn.execute(query).one()
        return count, _parse_ts(newest)

    def rows_created_in(self, dp: DataPoint, hours: Iterable[datetime], created_before: datetime | None,
                        at_most: int) -> int:
        """Rows created in the hours (before the cutoff), counted up to `at_most`: the count stops
        there, so it costs little however many rows the hours hold."""
        created = TABLES[dp.name].c.created_at
        rows = sa.select(sa.literal(1)).where(sa.or_(*(
            sa.and_(created >= self._param(first), created < self._param(last + timedelta(hours=1)))
            for first, last in hour_spans(hours))))
        if created_before is not None:
            rows = rows.where(created < self._param(created_before))
        with self.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(rows.limit(at_most).subquery())).scalar_one()

    def updates_since(self, dp: DataPoint, floor: datetime | None) -> list[tuple[datetime, datetime]]:
        """(created_at, updated_at) of the rows updated after `floor` (every row when None).

        A range scan of the updated_at index: its cost follows the rows changed, not the table.
        """
        table = TABLES[dp.name]
        # A row without created_at belongs to no hour (`rows_without_hour` counts it).
        query = sa.select(table.c.created_at, table.c.updated_at).where(table.c.created_at.is_not(None))
        if floor is not None:
            query = query.where(table.c.updated_at > self._param(floor))
        with self.connect() as conn:
            return [(_utc(c), _utc(u)) for c, u in conn.execute(query)]

    def rows_without_hour(self, dp: DataPoint, now: datetime) -> dict[str, int]:
        """Rows no hour of the export can hold, by reason: `created_at` NULL, or out of range
        (before 1970, or more than a day after `now`: a writer's clock that wrong is no clock skew)."""
        table = TABLES[dp.name]
        created = table.c.created_at
        out_of_range = sa.or_(created < self._param(EPOCH), created > self._param(now + timedelta(days=1)))
        query = sa.select(sa.func.count().filter(created.is_(None)), sa.func.count().filter(out_of_range)).where(
            sa.or_(created.is_(None), out_of_range))
        with self.connect() as conn:
            null, outside = conn.execute(query).one()
        return {"null_created_at": null, "created_at_out_of_range": outside}

    def dispose(self) -> None:
        self.engine.dispose()


def _parse_ts(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite aggregates return the stored text
        value = datetime.fromisoformat(value)
    return _utc(value)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the live simulator write while an export reads.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
