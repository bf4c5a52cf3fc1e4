"""The export contract (shared/spec/data_points.md) as data: columns, Parquet types and keys.

Everything else (source tables, readers, writers, dbt sources) derives from these definitions,
so a column is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# Written into every object's metadata; raised when a column is added, renamed or retyped.
SCHEMA_VERSION = "1"

TIMESTAMP = pa.timestamp("us", tz="UTC")
STRING = pa.string()

# The hive partition columns of the file layout (`year=2026/month=01/day=05/hour=07/`). Every
# reader the project sets up or documents declares them as 64-bit integers (DuckDB BIGINT, Spark
# LongType, Polars Int64, Athena bigint, BigQuery INT64): left to infer, engines disagree (DuckDB
# makes `hour` a string when hours 00-09 are present, and `hour = 7` then matches nothing).
PARTITION_COLUMNS = ("year", "month", "day", "hour")
PARTITION_COLUMN_TYPE = "BIGINT"

REQUEST_ERROR = pa.struct(
    [
        ("error_code", STRING),
        ("error_description", STRING),
        ("error_type", STRING),
        ("severity", STRING),
        ("workflow_slug", STRING),
    ]
)
REQUEST_EXECUTION = pa.struct(
    [("distinct_id", STRING), ("exec_id", STRING), ("workflow_slug", STRING)]
)


@dataclass(frozen=True)
class DataPoint:
    name: str
    schema: pa.Schema
    unique_key: tuple[str, ...]
    # The key's parts that must be set for a row to be identified: each group needs one non-null
    # column (a group of two is a coalesce). Empty: every column of `unique_key` is required.
    required_key: tuple[tuple[str, ...], ...] = ()
    # String columns the contract describes as serialized JSON (kept as strings in Parquet;
    # embedded as JSON values in the JSON objects).
    json_text: tuple[str, ...] = ()

    @property
    def key_groups(self) -> tuple[tuple[str, ...], ...]:
        return self.required_key or tuple((c,) for c in self.unique_key)

    @property
    def columns(self) -> list[str]:
        return self.schema.names

    @property
    def nested_columns(self) -> list[str]:
        """Columns stored as JSON in the source and as lists/structs in Parquet."""
        return [f.name for f in self.schema if pa.types.is_nested(f.type)]


def _strings(*names: str) -> list[tuple[str, pa.DataType]]:
    return [(n, STRING) for n in names]


REQUESTS = DataPoint(
    name="requests",
    schema=pa.schema(
        [
            ("workspace_key", STRING),
            ("created_at", TIMESTAMP),
            ("updated_at", TIMESTAMP),
            *_strings("api_type", "api_name", "wf_trigger_type"),
            ("distinct_id_list", pa.list_(STRING)),
            *_strings("actor", "tenant_id", "payload", "response", "metadata"),
            ("errors", pa.list_(REQUEST_ERROR)),
            ("executions", pa.list_(REQUEST_EXECUTION)),
            *_strings("idempotency_key", "status"),
        ]
    ),
    unique_key=("idempotency_key",),
    json_text=("payload", "response", "metadata"),
)

WORKFLOW_EXECUTIONS = DataPoint(
    name="workflow_executions",
    schema=pa.schema(
        [
            ("workspace_key", STRING),
            ("created_at", TIMESTAMP),
            ("updated_at", TIMESTAMP),
            *_strings(
                "execution_id",
                "recipient_distinct_id",
                "tenant_id",
                "idempotency_key",
                "parent_object_execution_id",
                "parent_object",
                "workflow_slug",
                "workflow_version",
                "node_id",
                "node_name",
                "node_type",
                "execution_stage",
                "status",
                "message",
                "properties",
            ),
        ]
    ),
    unique_key=("execution_id", "node_id"),
    json_text=("properties",),
)

MESSAGES = DataPoint(
    name="messages",
    schema=pa.schema(
        [
            ("workspace_key", STRING),
            ("created_at", TIMESTAMP),
            ("updated_at", TIMESTAMP),
            *_strings(
                "wf_execution_id",
                "broadcast_execution_id",
                "message_id",
                "recipient_distinct_id",
                "tenant_id",
                "idempotency_key",
                "parent_object",
                "parent_object_execution_id",
                "workflow_slug",
                "template_name",
                "template_slug",
                "message_status",
            ),
            ("message_triggered_at", TIMESTAMP),
            ("message_delivered_at", TIMESTAMP),
            ("message_seen_at", TIMESTAMP),
            ("message_clicked_at", TIMESTAMP),
            *_strings(
                "node_id",
                "node_name",
                "node_type",
                "execution_failure_reason",
                "delivery_failure_reason",
                "note",
                "message_id_by_vendor",
                "vendor_fallback_applicable",
                "vendor_fallback_level",
                "vendor_nickname",
                "vendor_slug",
                "is_smart",
                "success_metric",
                "success_achieved_at",
                "wait_time_in_seconds",
                "channel_slug",
                "channel_value",
                "webhook_data",
            ),
        ]
    ),
    # The contract's message_key is coalesce(wf_execution_id, broadcast_execution_id),
    # recipient_distinct_id, node_id, channel_slug, coalesce(channel_value, ''): exactly one of the
    # two execution ids is set, so these columns identify the same rows; the source's unique index
    # applies the coalesces (see source.py).
    unique_key=(
        "wf_execution_id",
        "broadcast_execution_id",
        "recipient_distinct_id",
        "node_id",
        "channel_slug",
        "channel_value",
    ),
    # channel_value is coalesced to '' in the key: a message to a channel without an address is
    # still identified.
    required_key=(("wf_execution_id", "broadcast_execution_id"), ("recipient_distinct_id",), ("node_id",),
                  ("channel_slug",)),
    json_text=("execution_failure_reason", "webhook_data"),
)

DATA_POINTS: dict[str, DataPoint] = {dp.name: dp for dp in (REQUESTS, WORKFLOW_EXECUTIONS, MESSAGES)}
