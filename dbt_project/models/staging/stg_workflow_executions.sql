{{ config(materialized='view') }}
select
    {{ notif_export.key_of(['execution_id', 'node_id']) }} as step_key,
    workspace_key,
    created_at,
    updated_at,
    execution_id,
    recipient_distinct_id,
    tenant_id,
    idempotency_key,
    parent_object_execution_id,
    parent_object,
    workflow_slug,
    workflow_version,
    node_id,
    node_name,
    node_type,
    execution_stage,
    status,
    message,
    {{ notif_export.parse_json('properties') }} as properties,
    {{ notif_export.source_file_column() }} as _source_file
from {{ notif_export.export_source('workflow_executions') }}
