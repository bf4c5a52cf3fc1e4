"""The JSON objects destination: one S3 object per changed record version, beside the hourly
Parquet files, for consumers that trigger on every object or feed a log pipeline.

An object's body is `{"data": {...}}`, the record with the contract's columns (timestamps in
RFC 3339 UTC with microseconds, the JSON-as-string columns embedded as JSON values, lists and
structs as arrays and objects); its `x-amz-meta-*` headers describe the event; its key is a
JMESPath template evaluated over three namespaces, `metadata`, `time` (of `updated_at`) and
`data` (the record). The template is validated when the settings load; a record whose key
cannot be made is skipped, counted and named, and the others are written.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import quote

import jmespath
import jmespath.exceptions
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.destination import BucketTarget
from notif_export.lib.workers import die_with_parent, worker_pool

NAMESPACES = ("metadata", "time", "data")
METADATA_FIELDS = ("workspace-key", "data-point", "operation-id", "event-id", "timestamp", "topic")
TIME_FIELDS = ("year", "month", "day", "hour", "minute", "second", "date", "datetime", "unix", "rfc3339",
               "rfc3339_nano")
DEFAULT_KEY_TEMPLATE = """join('', [time.rfc3339_nano, '_', metadata."event-id", '.json'])"""
MAX_KEY_BYTES = 1024  # S3's limit on a key, the prefix included
MAX_NAMED_FAILURES = 100  # failed keys named in a run's metadata (all are counted)

VARIABLES = {
    "bucket": "NOTIF_EXPORT_JSON_BUCKET",
    "prefix": "NOTIF_EXPORT_JSON_PREFIX",
    "sse": "NOTIF_EXPORT_SSE",  # the same encryption as the Parquet files
    "kms_key_id": "NOTIF_EXPORT_KMS_KEY_ID",
    "storage_class": "NOTIF_EXPORT_JSON_STORAGE_CLASS",
    "key_template": "NOTIF_EXPORT_JSON_KEY_TEMPLATE",
    "data_points": "NOTIF_EXPORT_JSON_DATA_POINTS",
}


class KeyTemplateError(ValueError):
    """A key template that cannot make keys; the message names the template and the problem."""


class KeyTemplateWarning(UserWarning):
    """A key template that lets objects overwrite each other (loaded all the same)."""


class BadKey(ValueError):
    """One record's key could not be made (empty, not a string, too long, an evaluation error)."""


# ---- the key template ---------------------------------------------------------------------------
def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_fields(updated_at: datetime) -> dict[str, Any]:
    """The `time` namespace: `updated_at` in UTC, zero-padded strings but `unix` (whole seconds)."""
    t = updated_at.astimezone(timezone.utc)
    return {
        "year": f"{t:%Y}", "month": f"{t:%m}", "day": f"{t:%d}", "hour": f"{t:%H}", "minute": f"{t:%M}",
        "second": f"{t:%S}", "date": f"{t:%Y-%m-%d}", "datetime": f"{t:%Y-%m-%dT%H:%M:%S}",
        "unix": int(t.timestamp()), "rfc3339": f"{t:%Y-%m-%dT%H:%M:%SZ}",
        "rfc3339_nano": f"{t:%Y-%m-%dT%H:%M:%S.%f}000Z",
    }


def _references(node: dict, at_root: bool = True) -> list[tuple[str, str | None]]:
    """The names a JMESPath AST reads from the root object: (top-level name, its first child
    name or None). Names read from something else (projected elements, a function's result, the
    right side of a pipe, an `&expression`) are not references to the root."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        return [(node["value"], None)] if at_root else []
    if kind == "current":
        return [("@", None)] if at_root else []
    if kind == "subexpression":  # a.b.c: [a, b, c]
        left, rest = children[0], children[1:]
        nested = [r for c in rest for r in _references(c, False)]
        if left["type"] == "field" and at_root:
            return [(left["value"], _leading_name(rest[0]))] + nested
        return _references(left, at_root) + nested
    if kind in ("projection", "value_projection", "filter_projection", "index_expression", "pipe"):
        return _references(children[0], at_root) + [r for c in children[1:] for r in _references(c, False)]
    if kind == "expref":
        return [r for c in children for r in _references(c, False)]
    return [r for c in children for r in _references(c, at_root)]


def _leading_name(node: dict) -> str | None:
    if node["type"] == "field":
        return node["value"]
    if node["type"] in ("subexpression", "projection", "value_projection", "filter_projection",
                        "index_expression", "flatten") and node.get("children"):
        return _leading_name(node["children"][0])
    return None


def _sample_context(dp: DataPoint) -> dict[str, Any]:
    """A record of `dp` with every column set, to try a template on."""
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    row = {f.name: when if pa.types.is_timestamp(f.type) else [] if pa.types.is_list(f.type) else f"{f.name}-1"
           for f in dp.schema}
    return record_context(dp, row, "run-1")


@dataclass(frozen=True)
class KeyTemplate:
    text: str
    expression: Any = field(compare=False, repr=False)
    references: frozenset[tuple[str, str | None]] = field(compare=False)

    @classmethod
    def parse(cls, text: str, data_points: Iterable[DataPoint]) -> KeyTemplate:
        """The template, checked against the records of `data_points`: syntax, references only
        into `metadata`, `time` and `data` (their known fields), and a non-empty string from a
        record with every column set (unless it reads into a JSON-as-string column, whose content
        only the record knows). Raises KeyTemplateError naming the template and why."""
        data_points = list(data_points)

        def refused(problem: str) -> KeyTemplateError:
            return KeyTemplateError(f"{VARIABLES['key_template']}={text!r} is refused: {problem}")

        try:
            expression = jmespath.compile(text)
        except jmespath.exceptions.JMESPathError as exc:
            detail = str(exc).splitlines()[0]
            raise refused(f"it is not a JMESPath expression ({detail}); quote names with a hyphen, "
                          'e.g. metadata."event-id"') from None
        refs = frozenset(_references(expression.parsed))
        problems = []
        for namespace, name in sorted(refs, key=lambda r: (r[0], r[1] or "")):
            if namespace == "@":
                problems.append("`@` reads the whole context; read metadata.<field>, time.<field> or data.<column>")
            elif namespace not in NAMESPACES:
                problems.append(f"it reads {namespace!r}, outside the namespaces metadata, time and data "
                                "(names are case-sensitive)")
            elif namespace == "metadata" and name is not None and name not in METADATA_FIELDS:
                problems.append(f"metadata has no field {name!r}; it has {', '.join(METADATA_FIELDS)} "
                                '(quote names with a hyphen: metadata."event-id")')
            elif namespace == "time" and name is not None and name not in TIME_FIELDS:
                problems.append(f"time has no field {name!r}; it has {', '.join(TIME_FIELDS)}")
            elif namespace == "data" and name is not None:
                lacking = [dp.name for dp in data_points if name not in dp.columns]
                if lacking:
                    problems.append(f"data.{name} is not a column of {', '.join(lacking)}")
        if problems:
            raise refused("; ".join(problems))
        data_read = {name for namespace, name in refs if namespace == "data"}
        for dp in data_points:
            if data_read & set(dp.json_text):
                continue  # what the embedded JSON holds is known per record only: checked there
            try:
                value = expression.search(_sample_context(dp))
            except jmespath.exceptions.JMESPathError as exc:
                raise refused(f"it fails on a {dp.name} record ({str(exc).splitlines()[0]})") from None
            if not isinstance(value, str) or not value:
                raise refused(f"it gives {json.dumps(value)[:80]} for a {dp.name} record, not a non-empty string "
                              "(e.g. join('/', [...]) makes one string of several)")
        return cls(text, expression, refs)

    def overwrite_warning(self, data_points: Iterable[DataPoint]) -> str | None:
        """Why objects would overwrite each other: neither the event id nor a record key in the
        key (a record key keeps the latest version of each record only)."""
        if ("metadata", "event-id") in self.references:
            return None
        used = {name for namespace, name in self.references if namespace == "data"}
        lacking = [dp.name for dp in data_points if not all(set(group) & used for group in dp.key_groups)]
        if not lacking:
            return None
        return (f"{VARIABLES['key_template']}={self.text!r} has neither metadata.\"event-id\" nor the record key "
                f"of {', '.join(lacking)}: records that give the same key overwrite each other (the later object "
                "replaces the earlier one)")

    def render(self, context: dict[str, Any], prefix: str = "") -> str:
        """The object key of one record (the prefix included); BadKey says why none can be made."""
        try:
            value = self.expression.search(context)
        except jmespath.exceptions.JMESPathError as exc:
            raise BadKey(f"the template fails on it ({str(exc).splitlines()[0]})") from None
        if not isinstance(value, str):
            # The type only: the value may be the record's content, which run metadata never shows.
            raise BadKey(f"the template gives {'null' if value is None else type(value).__name__}, not a string")
        if not value:
            raise BadKey("the template gives an empty key")
        key = prefix + value
        if len(key.encode()) > MAX_KEY_BYTES:
            raise BadKey(f"the key is {len(key.encode())} bytes, over S3's {MAX_KEY_BYTES}")
        return key


# ---- the destination ----------------------------------------------------------------------------
class JsonDestination(BucketTarget):
    """Where and how the JSON objects are written: the shared bucket fields (bucket, prefix,
    encryption, storage class, from their own NOTIF_EXPORT_JSON_* variables but the encryption),
    the data points written as objects and the key template."""

    VARIABLES: ClassVar[dict[str, str]] = VARIABLES
    # Objects are read one by one by their consumers: the archive classes are allowed here.
    STORAGE_CLASSES: ClassVar[tuple[str, ...]] = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                                                  "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE")

    prefix: str = "json/"
    data_points: list[str] = Field(default_factory=list)
    key_template: str = DEFAULT_KEY_TEMPLATE

    @field_validator("data_points")
    @classmethod
    def _data_points(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in DATA_POINTS]
        if unknown:
            raise ValueError(f"{VARIABLES['data_points']}={','.join(value)!r}: unknown {', '.join(unknown)}; use a "
                             f"comma-separated list of: {', '.join(DATA_POINTS)} (or leave it empty for none)")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _template(self) -> JsonDestination:
        _parsed(self.key_template, tuple(self.data_points))  # refused here, with the problem
        return self

    @property
    def template(self) -> KeyTemplate:
        return _parsed(self.key_template, tuple(self.data_points))

    @property
    def overwrite_warning(self) -> str | None:
        return self.template.overwrite_warning(DATA_POINTS[n] for n in self.data_points)


@functools.lru_cache(maxsize=32)
def _parsed(text: str, data_points: tuple[str, ...]) -> KeyTemplate:
    # With no data point enabled yet, the template is checked against all of them.
    return KeyTemplate.parse(text, [DATA_POINTS[n] for n in data_points or DATA_POINTS])


# ---- records, bodies, metadata --------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _rfc3339(value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _embedded(value: str | None) -> Any:
    """A JSON-as-string column's value as JSON; a value that is not valid JSON stays a string."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def record_data(dp: DataPoint, row: dict[str, Any]) -> dict[str, Any]:
    """A record (a row of the contract's columns, as pyarrow gives it) as the body's `data`."""
    data = {name: _json_value(row[name]) for name in dp.columns}
    for name in dp.json_text:
        data[name] = _embedded(data[name])
    return data


def encode_body(data: dict[str, Any]) -> bytes:
    return json.dumps({"data": data}, ensure_ascii=False, separators=(",", ":")).encode()


def event_id(dp: DataPoint, row: dict[str, Any]) -> str:
    """Stable per record version: a hash of the data point, the record's key and its updated_at."""
    updated = row["updated_at"]
    parts = [dp.name, *(row[c] or "" for c in dp.unique_key), _rfc3339(updated) if updated else ""]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _header(value: str) -> str:
    # S3 user metadata travels in HTTP headers: ASCII only.
    return value if value.isascii() else quote(value, safe="")


def object_metadata(dp: DataPoint, row: dict[str, Any], run_id: str) -> dict[str, str]:
    """The object's x-amz-meta-* headers."""
    return {
        "workspace-key": _header(row["workspace_key"] or ""),
        "data-point": dp.name,
        "operation-id": run_id,
        "event-id": event_id(dp, row),
        "timestamp": _rfc3339(row["updated_at"]),
        "topic": dp.name,
    }


def record_context(dp: DataPoint, row: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What a key template reads: metadata (the object's), time (of updated_at) and data (the
    record as the body holds it)."""
    return {"metadata": object_metadata(dp, row, run_id), "time": time_fields(row["updated_at"]),
            "data": record_data(dp, row)}


def record_name(dp: DataPoint, row: dict[str, Any]) -> str:
    """A record for a message: its key and updated_at (never its other values)."""
    key = ", ".join(f"{c}={row[c]}" for c in dp.unique_key if row.get(c) is not None)
    updated = row.get("updated_at")
    return f"{dp.name} {key} updated_at={_rfc3339(updated) if updated else 'null'}"


# ---- writing -----------------------------------------------------------------------------------
@dataclass
class ObjectsWritten:
    """What one run wrote for one data point."""

    objects: int = 0
    bytes: int = 0
    failed_keys: int = 0
    failures: list[str] = field(default_factory=list)  # the first MAX_NAMED_FAILURES, each with why

    def fail(self, name: str, why: str) -> None:
        self.failed_keys += 1
        if len(self.failures) < MAX_NAMED_FAILURES:
            self.failures.append(f"{name}: {why}")


@dataclass(frozen=True)
class JsonObject:
    key: str
    body: bytes
    metadata: dict[str, str]


def prepare_objects(dp: DataPoint, destination: JsonDestination, rows: Iterable[dict[str, Any]], run_id: str,
                    written: ObjectsWritten) -> Iterator[JsonObject]:
    """Each record as its object; a record whose key cannot be made is counted in `written`."""
    template = destination.template
    for row in rows:
        if row["updated_at"] is None:  # no version to name: the source's own defect
            written.fail(record_name(dp, row), "updated_at is null")
            continue
        context = record_context(dp, row, run_id)
        try:
            key = template.render(context, destination.prefix)
        except BadKey as exc:
            written.fail(record_name(dp, row), str(exc))
            continue
        yield JsonObject(key, encode_body(context["data"]), context["metadata"])


def put_objects(s3: Any, destination: JsonDestination, objects: Iterable[JsonObject], written: ObjectsWritten,
                workers: int | None = None) -> None:
    """PUT the objects concurrently (a boto3 client is thread-safe), as many at once as the
    client has connections. A failed PUT (after botocore's retries) fails the call."""
    workers = workers or s3.meta.config.max_pool_connections

    def put(obj: JsonObject) -> int:
        s3.put_object(Bucket=destination.bucket, Key=obj.key, Body=obj.body, ContentType="application/json",
                      **destination.put_args(obj.metadata))
        return len(obj.body)

    with ThreadPoolExecutor(workers, thread_name_prefix="s3-put") as pool:
        for size in pool.map(put, objects):
            written.objects += 1
            written.bytes += size


# botocore spends about a millisecond of CPU per request under Python's lock, so one process
# tops out near 470 PUTs/s whatever its threads; below this many objects per process, starting
# the processes costs more than it saves.
MIN_OBJECTS_PER_PROCESS = 2_000


def write_objects(s3: Any, destination: JsonDestination, dp: DataPoint, batches: Iterable[pa.RecordBatch],
                  run_id: str, workers: int | None = None, written: ObjectsWritten | None = None,
                  access: BucketAccess | None = None, processes: int = 1) -> ObjectsWritten:
    """One object per record of `batches` (contract batches of `dp`), a batch at a time; the
    counts are added to `written` when given. With `access` and `processes` > 1, a batch of
    enough records has its PUTs split over that many worker processes (each its own client)."""
    written = written if written is not None else ObjectsWritten()
    with ExitStack() as stack:
        pool: ProcessPoolExecutor | None = None
        for batch in batches:
            objects = list(prepare_objects(dp, destination, batch.to_pylist(), run_id, written))
            parts = min(processes, len(objects) // MIN_OBJECTS_PER_PROCESS) if access is not None else 1
            if parts < 2:
                put_objects(s3, destination, objects, written, workers)
                continue
            if pool is None:
                pool = stack.enter_context(worker_pool(processes, _start_put_worker, (access,)))
            for count, size in pool.map(_put_part, [objects[i::parts] for i in range(parts)],
                                        [destination] * parts, [workers] * parts):
                written.objects += count
                written.bytes += size
    return written


_put_client: list[Any] = []


def _start_put_worker(access: BucketAccess) -> None:
    die_with_parent()
    _put_client.append(access.s3_client())


def _put_part(objects: list[JsonObject], destination: JsonDestination, workers: int | None) -> tuple[int, int]:
    part = ObjectsWritten()
    put_objects(_put_client[0], destination, objects, part, workers)
    return part.objects, part.bytes
