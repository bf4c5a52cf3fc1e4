{#- DuckDB sees the export files' modification times, so it recomputes only what changed
    (macros/incremental_marts.sql); other warehouses rebuild the table in full. #}
{{ config(materialized=('incremental' if target.type == 'duckdb' else 'table'),
          unique_key='message_key',
          incremental_strategy='delete+insert',
          on_schema_change='append_new_columns',
          post_hook="{{ notif_export.delete_messages_gone() }}") }}
-- End to end, one row per message: its request's status and its workflow execution's outcome.
-- Incremental builds recompute the messages whose own, request's or execution's rows changed.
{%- set newest_source = 'greatest(messages._file_modified_at, requests._file_modified_at, executions._file_modified_at)' %}
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
    {{ newest_source }} as _source_modified_at
from {{ ref('int_messages__latest') }} as messages
left join {{ ref('int_requests__latest') }} as requests
    on messages.idempotency_key = requests.idempotency_key
left join {{ ref('int_execution_outcomes') }} as executions
    on messages.wf_execution_id = executions.execution_id
where {{ notif_export.loaded_since_last_build(newest_source) }}
