{{ config(materialized='view') }}
select
    requests.idempotency_key,
    requests.status as request_status,
    {{ notif_export.unnested('execution', 'exec_id') }} as execution_id,
    {{ notif_export.unnested('execution', 'distinct_id') }} as recipient_distinct_id,
    {{ notif_export.unnested('execution', 'workflow_slug') }} as workflow_slug,
    requests._built_at
from {{ ref('int_requests__latest') }} as requests
{{ notif_export.unnest_join('requests.executions', 'execution', ['distinct_id', 'exec_id', 'workflow_slug']) }}
