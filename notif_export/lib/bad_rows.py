"""Rows a source should never hold but sometimes does, and the rule the export applies to each.

The rules are applied where rows are read (`source.SourceDatabase.read_range`), so the export and
`verify` see the same rows: a skipped row is not "missing" from a file, it is counted here. Every
check is vectorized over a record batch; the per-row work happens only in a batch that has a bad
row. One bad row never fails its hour or the run.

| kind | rule |
|---|---|
| `null_key` | skipped: a row without its key cannot be deduplicated nor verified |
| `duplicate_key` | the row with the latest `updated_at` is kept (the first read on a tie), the others skipped |
| `invalid_utf8` | exported, the invalid bytes replaced by U+FFFD (SQLite only: PostgreSQL refuses them) |
| `invalid_nested_json` | exported, the list/struct column nulled: not JSON, or JSON of another shape |

Not bad rows: JSON strings (`payload`, `webhook_data`, ...) are strings in the contract and are
exported as they are, valid JSON or not (nothing is parsed); a large value is exported as is.
Rows whose `created_at` is NULL, before 1970 or far in the future belong to no exported hour:
`source.SourceDatabase.rows_without_hour` counts them for `verify`.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc

from notif_export.lib.contract import DataPoint
from notif_export.lib.hours import hour_start

KINDS = ("null_key", "duplicate_key", "invalid_utf8", "invalid_nested_json")


class BadRows:
    """Bad rows met while reading, per created_at hour and kind (reader threads share one)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[datetime, str]] = Counter()
        self._lock = threading.Lock()

    def add(self, kind: str, created_at: pa.Array) -> None:
        hours = [hour_start(c) for c in created_at.to_pylist()]
        with self._lock:
            self._counts.update((hour, kind) for hour in hours)

    def by_hour(self) -> dict[datetime, dict[str, int]]:
        out: dict[datetime, dict[str, int]] = {}
        for (hour, kind), n in sorted(self._counts.items()):
            out.setdefault(hour, {})[kind] = n
        return out


def text_array(values, bad: list[int]) -> pa.Array:
    """Strings from the bytes SQLite holds: valid UTF-8 is cast at once; a batch with invalid
    bytes is decoded value by value with the bytes replaced, their rows added to `bad`."""
    raw = pa.array(values, type=pa.binary())
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        decoded = []
        for i, v in enumerate(values):
            if v is not None:
                try:
                    v = v.decode()
                except UnicodeDecodeError:
                    v = v.decode(errors="replace")
                    bad.append(i)
            decoded.append(v)
        return pa.array(decoded, type=pa.string())


def nested_array(values, type_: pa.DataType, decode, bad: list[int]) -> pa.Array:
    """A list/struct column from JSON text (or values already decoded): at once when every value
    fits; otherwise value by value, nulling those that are not JSON or not of the type."""
    try:
        return pa.array([decode(v) for v in values], type=type_)
    except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError):
        fitted = []
        for i, v in enumerate(values):
            try:
                fitted.append(pa.array([decode(v)], type=type_)[0])
            except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowTypeError):
                fitted.append(None)
                bad.append(i)
        return pa.array(fitted, type=type_)


def keyed(batch: pa.RecordBatch, dp: DataPoint) -> pa.Array | None:
    """Which rows have their key (None: all of them, the usual case, at the cost of one pass)."""
    mask = reduce(pc.and_, (reduce(pc.or_, (pc.is_valid(batch.column(c)) for c in group))
                            for group in dp.key_groups))
    return None if pc.all(mask).as_py() else mask


class Duplicates:
    """The keys held by more than one row of an hour, from the key columns of a time range, and
    which of their rows to keep: the latest `updated_at`, the first read on a tie."""

    def __init__(self, keys: pa.Table, dp: DataPoint):
        self._columns = ["hour", *dp.unique_key]
        # Key parts compared as the contract's message_key does (NULL is '').
        table = pa.table({"hour": pc.floor_temporal(keys["created_at"], unit="hour"),
                          **{c: pc.coalesce(keys[c], "") for c in dp.unique_key},
                          "updated_at": keys["updated_at"], "created_at": keys["created_at"]})
        grouped = table.group_by(self._columns).aggregate([("updated_at", "max"), ("created_at", "count")])
        shared = grouped.filter(pc.greater(grouped["created_at_count"], 1))
        self._newest = {tuple(r[c] for c in self._columns): r["updated_at_max"] for r in shared.to_pylist()}
        self._first_key_parts = pa.array({k[1] for k in self._newest}, type=pa.string())
        self._kept: set[tuple] = set()
        self._lock = threading.Lock()

    def keep(self, batch: pa.RecordBatch) -> pa.Array | None:
        """Which rows of the batch to keep (None: all)."""
        if not self._newest:
            return None
        # Only rows sharing the key's first part with a duplicate are looked at one by one.
        candidates = pc.is_in(pc.coalesce(batch.column(self._columns[1]), ""), value_set=self._first_key_parts)
        if not pc.any(candidates).as_py():
            return None
        keep = [True] * batch.num_rows
        indices = pc.indices_nonzero(candidates)
        names = ["created_at", "updated_at", *self._columns[1:]]
        rows = pa.RecordBatch.from_arrays([batch.column(c) for c in names], names=names).take(indices).to_pylist()
        with self._lock:  # the readers of one hour's slices share the kept keys
            for i, row in zip(indices.to_pylist(), rows):
                key = (hour_start(row["created_at"]), *(row[c] or "" for c in self._columns[1:]))
                newest = self._newest.get(key)
                if newest is not None:
                    keep[i] = row["updated_at"] == newest and key not in self._kept
                    if keep[i]:
                        self._kept.add(key)
        return pa.array(keep)
