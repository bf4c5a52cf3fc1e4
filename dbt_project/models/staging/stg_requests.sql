{{ config(materialized='view') }}
select
    idempotency_key,
    workspace_key,
    created_at,
    updated_at,
    api_type,
    api_name,
    wf_trigger_type,
    distinct_id_list,
    actor,
    tenant_id,
    {{ notif_export.parse_json('payload') }} as payload,
    {{ notif_export.parse_json('response') }} as response,
    {{ notif_export.parse_json('metadata') }} as metadata,
    errors,
    executions,
    status,
    {{ notif_export.source_file_column() }} as _source_file
from {{ notif_export.export_source('requests') }}
