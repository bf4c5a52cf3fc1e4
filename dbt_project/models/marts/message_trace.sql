{#- DuckDB sees the export files' modification times, so it recomputes only what changed
    (macros/incremental_marts.sql); other warehouses rebuild the table in full. #}
{{ config(materialized=('incremental' if target.type == 'duckdb' else 'table'),
          unique_key='message_key',
          incremental_strategy='delete+insert',
          on_schema_change='append_new_columns',
          post_hook="{{ notif_export.delete_keys_gone('message_key', ref('int_messages__latest')) }}") }}
-- End to end, one row per message: its request's status and its workflow execution's outcome.
-- Incremental builds recompute the messages whose own, request's or execution's rows changed.
{%- set newest_source = 'greatest(messages._file_modified_at, requests._file_modified_at, executions._file_modified_at)' %}
{%- set watermark = notif_export.newest_in_this('_built_at') %}
select
    messages.message_key,
    messages.created_at,
    messages.updated_at,
    messages.idempotency_key,
    messages.wf_execution_id as execution_id,
    messages.broadcast_execution_id,
    messages.recipient_distinct_id,
    messages.tenant_id,
    messages.workflow_slug,
    messages.node_id,
    messages.channel_slug,
    messages.vendor_slug,
    messages.message_status,
    messages.message_triggered_at,
    messages.message_delivered_at,
    messages.message_seen_at,
    messages.message_clicked_at,
    messages.delivery_failure_reason,
    requests.created_at as request_created_at,
    requests.api_type as request_api_type,
    requests.api_name as request_api_name,
    requests.status as request_status,
    executions.outcome as execution_outcome,
    executions.steps as execution_steps,
    executions.error_steps as execution_error_steps,
    executions.warning_steps as execution_warning_steps,
    {{ newest_source }} as _source_modified_at,
    {{ notif_export.built_at() }} as _built_at
from {{ ref('int_messages__latest') }} as messages
left join {{ ref('int_requests__latest') }} as requests
    on messages.idempotency_key = requests.idempotency_key
left join {{ ref('int_execution_outcomes') }} as executions
    on messages.wf_execution_id = executions.execution_id
{%- if watermark is not none %}
{#- The messages of which any of the three rows was written since the watermark, found from each
    side's own `_built_at` (a filter on the join would join every message first). #}
{%- set since = notif_export.loaded_since_last_build() %}
where messages.message_key in (
    select message_key from {{ ref('int_messages__latest') }} where {{ since }}
    union all
    select changed.message_key from {{ ref('int_messages__latest') }} as changed
    join {{ ref('int_requests__latest') }} as requests using (idempotency_key)
    where requests.{{ since }}
    union all
    select changed.message_key from {{ ref('int_messages__latest') }} as changed
    join {{ ref('int_execution_outcomes') }} as executions on changed.wf_execution_id = executions.execution_id
    where executions.{{ since }}
)
{%- endif %}
