{{ config(materialized='view') }}
select
    requests.idempotency_key,
    requests.created_at,
    requests.api_name,
    requests.tenant_id,
    requests.status as request_status,
    {{ notif_export.unnest_position('request_error') }} as error_position,
    {{ notif_export.unnested('request_error', 'error_code') }} as error_code,
    {{ notif_export.unnested('request_error', 'error_description') }} as error_description,
    {{ notif_export.unnested('request_error', 'error_type') }} as error_type,
    {{ notif_export.unnested('request_error', 'severity') }} as severity,
    {{ notif_export.unnested('request_error', 'workflow_slug') }} as workflow_slug,
    requests._file_modified_at,
    requests._built_at
from {{ ref('int_requests__latest') }} as requests
{{ notif_export.unnest_join('requests.errors', 'request_error',
    ['error_code', 'error_description', 'error_type', 'severity', 'workflow_slug']) }}
