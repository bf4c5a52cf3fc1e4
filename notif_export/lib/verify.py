"""Does the bucket equal the source? Hour by hour, per data point, with DuckDB doing the counting.

For each hour of the window the source's rows (key and `updated_at`, read by `created_at`) are
compared with the hour's file. The cheap comparison comes first: per hour, a row count and a
checksum (the sum of a hash of key and `updated_at`) on both sides. Only the hours where these
differ are compared row by row, which says how many rows are missing from the file, stale in it
(an `updated_at` other than the source's), or extra (gone from the source, e.g. erased). Files
are also checked for their schema (against the contract) and for hours that have no rows.

Rows updated in the source after `settled_before` are left out on both sides: they are the
sync's to export, not drift (under live traffic the newest changes are always on their way).
With the sync's cadence for cold hours (`ColdTolerance`), a row of a cold hour is settled only
once it is older than the cadence's bound too; the rows of cold hours that differ from their
file but are still within that bound are counted apart (`within_cold_bound`), not as drift.

The source is read with the export's bad-row rules (`bad_rows.py`): a row the export skips is not
missing from the file, and a deduplicated key is compared once. The bad rows met are counted per
hour, and the rows no hour can hold (`created_at` NULL or out of range) per data point.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from notif_export.lib.bad_rows import BadRows
from notif_export.lib.contract import DataPoint
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import HIVE_TYPES
from notif_export.lib.hours import describe_hours, epoch_us, hour_key, hour_start
from notif_export.lib.settings import Settings
from notif_export.lib.source import SourceDatabase
from notif_export.lib.sync import ColdCadence

_HOUR_US = 3_600_000_000
_FILE_HOUR = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/")


@dataclass(frozen=True)
class HourDrift:
    """How one hour's file differs from the source (only hours that differ are reported)."""

    hour: datetime
    source_rows: int
    file_rows: int | None          # None: the hour has no file
    missing: int = 0               # in the source, not in the file
    stale: int = 0                 # in the file with another updated_at than the source's
    extra: int = 0                 # in the file, no longer in the source
    schema: str = ""               # how the file's columns differ from the contract

    @property
    def empty_hour_file(self) -> bool:
        """A file for an hour that has no rows."""
        return self.source_rows == 0 and self.file_rows is not None


@dataclass(frozen=True)
class ColdTolerance:
    """The sync's cold-hour cadence seen from verify: in the hours up to `newest_cold_hour` a row
    is settled only when updated before `settled_before` (its rewrite may be waiting for the cadence)."""

    newest_cold_hour: datetime
    settled_before: datetime


@dataclass
class Verification:
    data_point: str
    start: datetime
    end: datetime
    hours_checked: int = 0
    source_rows: int = 0
    file_rows: int = 0
    drift: list[HourDrift] = field(default_factory=list)
    empty_hours: list[datetime] = field(default_factory=list)  # no rows and no file: as they should be
    bad_rows: dict[datetime, dict[str, int]] = field(default_factory=dict)  # hour -> kind -> rows
    rows_without_hour: dict[str, int] = field(default_factory=dict)        # reason -> rows, whole table
    within_cold_bound: dict[datetime, int] = field(default_factory=dict)   # cold hour -> rows awaiting its rewrite

    @property
    def drifted_hours(self) -> list[datetime]:
        return [d.hour for d in self.drift]

    def totals(self) -> dict[str, int]:
        return {
            "hours checked": self.hours_checked,
            "hours drifted": len(self.drift),
            "rows missing": sum(d.missing for d in self.drift),
            "rows stale": sum(d.stale for d in self.drift),
            "rows extra": sum(d.extra for d in self.drift),
            "files for empty hours": sum(d.empty_hour_file for d in self.drift),
            "files with another schema": sum(bool(d.schema) for d in self.drift),
            "bad rows": sum(n for kinds in self.bad_rows.values() for n in kinds.values()),
            "rows without an hour": sum(self.rows_without_hour.values()),
        }


def verify(
    source: SourceDatabase,
    s3: Any,
    destination: Destination,
    dp: DataPoint,
    start: datetime,
    end: datetime,
    con: duckdb.DuckDBPyConnection,
    settled_before: datetime | None = None,
    cold: ColdTolerance | None = None,
) -> Verification:
    """Compare the hours [start, end) of one data point. `con` reads the bucket (httpfs loaded,
    an S3 secret set: `duckdb_s3.connect_to_bucket`)."""
    start, end = hour_start(start), hour_start(end)
    result = Verification(dp.name, start, end, hours_checked=int((end - start) / timedelta(hours=1)))
    files = bucket_files(s3, destination, dp, start, end)
    key = _key_expression(dp)
    bad_rows = BadRows()

    con.register("source_reader", pa.RecordBatchReader.from_batches(
        _key_schema(dp), source.read_range(dp, start, end, columns=_key_columns(dp), bad_rows=bad_rows)
    ))
    con.execute("SET TimeZone = 'UTC'")
    # Hour files are small: fetching each whole beats one request per column chunk. (No metadata
    # caches: a file rewritten in the same second as the cached copy, S3 times having whole
    # seconds, would be read stale.)
    con.execute("SET prefetch_all_parquet_files = true")
    con.execute("SET threads = 16")  # remote reads wait on the network, not on the 2 cores
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE source_keys AS
        SELECT epoch_us(created_at) // {_HOUR_US} AS hour, {key} AS key, epoch_us(updated_at) AS updated_us
        FROM source_reader""")
    settled_us = epoch_us(settled_before) if settled_before else 2**62
    cold_hour = _hour_number(cold.newest_cold_hour) if cold else -2**62
    con.execute("""
        CREATE OR REPLACE TEMP TABLE unsettled AS SELECT hour, key, updated_us FROM source_keys
        WHERE updated_us > CASE WHEN hour <= $cold_hour THEN $cold_settled_us ELSE $settled_us END""",
                {"cold_hour": cold_hour, "settled_us": settled_us,
                 "cold_settled_us": min(settled_us, epoch_us(cold.settled_before)) if cold else settled_us})

    bad_schema = schema_problems(con, dp, list(files.values()))
    file_by_hour = {_hour_number(h): uri for h, uri in files.items()}
    readable = {h: uri for h, uri in file_by_hour.items() if uri not in bad_schema}
    if readable:
        uris = ", ".join(f"'{u}'" for u in readable.values())
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE file_keys AS
            SELECT epoch_us(make_timestamp(year, month, day, hour, 0, 0)) // {_HOUR_US} AS hour, {key} AS key,
                   epoch_us(updated_at) AS updated_us
            FROM read_parquet([{uris}], hive_partitioning = true, hive_types = {HIVE_TYPES})""")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE file_keys (hour BIGINT, key UBIGINT, updated_us BIGINT)")
    # Rows per file: counted while reading the keys; footers only for files not read (bad schema).
    file_counts = {hour: 0 for hour in file_by_hour}
    file_counts.update(con.execute("SELECT hour, count(*) FROM file_keys GROUP BY hour").fetchall())
    if bad_schema:
        hour_of_uri = {uri: hour for hour, uri in file_by_hour.items()}
        file_counts.update((hour_of_uri[uri], rows) for uri, rows in con.execute(
            f"SELECT file_name, num_rows FROM parquet_file_metadata([{', '.join(map(repr, bad_schema))}])").fetchall())

    # The cheap pass: per hour, count and checksum of key + updated_at on both sides.
    def per_hour(table: str) -> dict[int, tuple[int, int]]:
        return {hour: (n, checksum) for hour, n, checksum in con.execute(
            f"SELECT hour, count(*), sum(hash(key, updated_us)::HUGEINT) FROM {table} "
            "WHERE key NOT IN (SELECT key FROM unsettled) GROUP BY hour").fetchall()}

    source_summary, file_summary = per_hour("source_keys"), per_hour("file_keys")
    source_rows = dict(con.execute("SELECT hour, count(*) FROM source_keys GROUP BY hour").fetchall())
    differing = {h for h in source_summary.keys() | file_summary.keys() if source_summary.get(h) != file_summary.get(h)}
    result.source_rows = sum(source_rows.values())
    result.file_rows = sum(file_counts.values())

    # Row by row, only where the hours differ.
    details: dict[int, tuple[int, int, int]] = {}
    if differing:
        con.execute("CREATE OR REPLACE TEMP TABLE differing (hour BIGINT)")
        con.executemany("INSERT INTO differing VALUES (?)", [[h] for h in differing])
        details = {hour: (missing, stale, extra) for hour, missing, stale, extra in con.execute("""
            SELECT coalesce(s.hour, d.hour) AS hour,
                   count(*) FILTER (WHERE d.key IS NULL),
                   count(*) FILTER (WHERE s.key IS NOT NULL AND d.key IS NOT NULL AND s.updated_us <> d.updated_us),
                   count(*) FILTER (WHERE s.key IS NULL)
            FROM (SELECT * FROM source_keys WHERE hour IN (SELECT hour FROM differing)
                  AND key NOT IN (SELECT key FROM unsettled)) AS s
            FULL JOIN (SELECT * FROM file_keys WHERE hour IN (SELECT hour FROM differing)
                       AND key NOT IN (SELECT key FROM unsettled)) AS d USING (hour, key)
            GROUP BY 1""").fetchall()}

    for hour in sorted(differing | {h for h, u in file_by_hour.items() if u in bad_schema}
                       | {h for h in file_by_hour if not source_rows.get(h)}):
        missing, stale, extra = details.get(hour, (0, 0, 0))
        uri = file_by_hour.get(hour)
        if uri in bad_schema:  # its rows could not be compared: count them all as to rewrite
            missing = source_rows.get(hour, 0)
        result.drift.append(HourDrift(
            hour=_hour_of(hour), source_rows=source_rows.get(hour, 0),
            file_rows=file_counts.get(hour) if uri else None,
            missing=missing, stale=stale, extra=extra, schema=bad_schema.get(uri, ""),
        ))
    if cold:  # rows of cold hours left out that the file does not hold as they are: waiting for the cadence
        result.within_cold_bound = {_hour_of(hour): n for hour, n in con.execute("""
            SELECT u.hour, count(*) FROM unsettled AS u LEFT JOIN file_keys AS f USING (hour, key)
            WHERE u.hour <= ? AND u.updated_us <= ? AND f.updated_us IS DISTINCT FROM u.updated_us
            GROUP BY 1 ORDER BY 1""", [cold_hour, settled_us]).fetchall()}
    result.bad_rows = bad_rows.by_hour()
    result.rows_without_hour = source.rows_without_hour(dp, datetime.now(timezone.utc))
    first, last = _hour_number(start), _hour_number(end)
    result.empty_hours = [_hour_of(h) for h in range(first, last) if h not in source_rows and h not in file_by_hour]
    con.unregister("source_reader")
    con.execute("DROP TABLE IF EXISTS source_keys; DROP TABLE IF EXISTS file_keys; DROP TABLE IF EXISTS unsettled")
    return result


def bucket_files(s3: Any, destination: Destination, dp: DataPoint, start: datetime,
                 end: datetime) -> dict[datetime, str]:
    """The data point's files for the hours [start, end), by hour, listed day by day."""
    found: dict[datetime, str] = {}
    day = start.replace(hour=0)
    while day < end:
        day_prefix = destination.object_key(dp.name, day).rsplit("/hour=", 1)[0] + "/"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=destination.bucket, Prefix=day_prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith(f"/{dp.name}.parquet"):
                    continue
                match = _FILE_HOUR.search(obj["Key"])
                hour = datetime(*map(int, match.groups()), tzinfo=start.tzinfo) if match else None
                if hour and start <= hour < end and obj["Key"] == destination.object_key(dp.name, hour):
                    found[hour] = destination.uri(obj["Key"])
        day += timedelta(days=1)
    return found


def schema_problems(con: duckdb.DuckDBPyConnection, dp: DataPoint, uris: list[str]) -> dict[str, str]:
    """Files whose columns (names, order, Parquet types) are not the contract's, and how."""
    if not uris:
        return {}
    expected = _schema_rows(con, [_contract_file(dp)])
    reference = next(iter(expected.values()))
    problems = {}
    for uri, columns in _schema_rows(con, uris).items():
        if columns != reference:
            want, got = dict(reference), dict(columns)
            missing = [c for c in want if c not in got]
            unexpected = [c for c in got if c not in want]
            retyped = [c for c in want if c in got and want[c] != got[c]]
            problems[uri] = "; ".join(filter(None, [
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(unexpected)}" if unexpected else "",
                f"other type for {', '.join(retyped)}" if retyped else "",
            ])) or "columns in another order"
    return problems


def _schema_rows(con: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "SELECT file_name, name, concat_ws('/', type, converted_type, logical_type, repetition_type, num_children) "
        f"FROM parquet_schema([{', '.join(repr(f) for f in files)}]) WHERE name <> 'schema'"
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {f: [] for f in files}
    for file_name, name, kind in rows:
        out.setdefault(file_name, []).append((name, kind))
    return out


_CONTRACT_FILES: dict[str, str] = {}


def _contract_file(dp: DataPoint) -> str:
    """An empty file written with the contract's schema: the Parquet schema every file must have."""
    if dp.name not in _CONTRACT_FILES:
        path = Path(tempfile.mkdtemp(prefix="notif_export_contract_")) / f"{dp.name}.parquet"
        pq.write_table(dp.schema.empty_table(), path)
        _CONTRACT_FILES[dp.name] = str(path)
    return _CONTRACT_FILES[dp.name]


def _key_columns(dp: DataPoint) -> list[str]:
    return ["created_at", "updated_at", *dp.unique_key]


def _key_schema(dp: DataPoint) -> pa.Schema:
    return pa.schema([dp.schema.field(c) for c in _key_columns(dp)])


def _key_expression(dp: DataPoint) -> str:
    # The contract's key (nullable parts coalesced, as in messages' message_key) as a 64-bit
    # hash: joins and aggregates over integers, not strings (a collision is 1 in 2^64 per pair).
    return "hash(" + ", ".join(f"coalesce({c}, '')" for c in dp.unique_key) + ")"


def _hour_number(hour: datetime) -> int:
    return epoch_us(hour) // _HOUR_US


def _hour_of(hour_number: int) -> datetime:
    return datetime.fromtimestamp(hour_number * 3600, tz=timezone.utc)


def render(verifications: list[Verification]) -> Iterator[str]:
    """The per-hour table and the totals, as `notif-export verify` prints them."""
    yield (f"{'data point':<20} {'hour':<17} {'source':>8} {'file':>8} {'missing':>8} {'stale':>8} {'extra':>8} "
           f"{'bad':>8}  problem")
    for v in verifications:
        for d in v.drift:
            file_rows = "-" if d.file_rows is None else str(d.file_rows)
            problem = d.schema and f"schema: {d.schema}" or ("file for an hour with no rows" if d.empty_hour_file else "")
            bad = sum(v.bad_rows.get(d.hour, {}).values())
            yield (f"{v.data_point:<20} {hour_key(d.hour):<17} {d.source_rows:>8} {file_rows:>8} {d.missing:>8} "
                   f"{d.stale:>8} {d.extra:>8} {bad:>8}  {problem}")
    for v in verifications:
        totals = v.totals()
        yield (f"{v.data_point}: {totals['hours checked']} hours, {v.source_rows} source rows, {v.file_rows} file rows; "
               + ", ".join(f"{n} {name}" for name, n in totals.items() if name != "hours checked"))
        # Not drift: the rules of bad_rows.py, applied alike to the files and to this comparison.
        kinds = Counter()
        for by_kind in v.bad_rows.values():
            kinds.update(by_kind)
        if v.within_cold_bound:
            yield (f"{v.data_point}: {sum(v.within_cold_bound.values())} rows in {len(v.within_cold_bound)} cold hours "
                   "wait for the sync's next rewrite of cold hours, within its bound (not drift): "
                   + describe_hours(v.within_cold_bound))
        if kinds or any(v.rows_without_hour.values()):
            yield (f"{v.data_point}: bad rows by rule (not drift): "
                   + ", ".join(f"{n} {kind}" for kind, n in {**kinds, **v.rows_without_hour}.items() if n))


def reconcile(check: Callable[[], Verification], repair: Callable[[list[datetime]], object] | None
              ) -> tuple[Verification, Verification | None]:
    """Verify; with `repair`, rewrite the drifted hours and verify again (the second result)."""
    found = check()
    if not found.drift or repair is None:
        return found, None
    repair(found.drifted_hours)
    return found, check()


def recent_window(settings: Settings, now: datetime) -> tuple[datetime, datetime, datetime]:
    """What the reconciliation checks by default: the last `reconcile_window_hours` up to the
    current hour (from the first partition on), and the moment before which rows count as
    settled (older than `_hot_settle`: newer ones are the sync's)."""
    end = hour_start(now) + timedelta(hours=1)
    start = max(settings.start, end - timedelta(hours=settings.reconcile_window_hours))
    return start, end, now - _hot_settle(settings)


def cold_tolerance(settings: Settings, now: datetime) -> ColdTolerance | None:
    """With the sync's cadence for cold hours: the hours cold now, and the moment before which
    their rows count as settled (a hot hour's bound plus the cadence's extra staleness)."""
    cadence: ColdCadence | None = settings.cold_cadence
    if cadence is None:
        return None
    interval = timedelta(seconds=settings.sync_interval_seconds)
    return ColdTolerance(cadence.newest_cold_hour(now), now - _hot_settle(settings) - cadence.extra_staleness(interval))


def _hot_settle(settings: Settings) -> timedelta:
    """How long a change is the sync's: a tick's interval, its cut's grace and the overlap."""
    return timedelta(seconds=settings.sync_interval_seconds + settings.sync_commit_grace_seconds
                     + settings.sync_overlap_seconds)
