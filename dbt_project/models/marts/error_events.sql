-- Every error, one row each (keyed by where it arose and its position there): request errors (unnested), workflow steps that logged an error or a
-- warning, and messages whose execution or delivery failed, with the reason given.
with request_errors as (
    select
        'request' as error_source,
        idempotency_key as reference_id,
        error_position,
        created_at as occurred_at,
        coalesce(error_code, error_type) as error,
        error_description as detail,
        severity,
        workflow_slug,
        tenant_id,
        cast(null as {{ dbt.type_string() }}) as channel_slug,
        idempotency_key
    from {{ ref('int_request_errors__unnested') }}
),

step_issues as (
    select
        'workflow_step' as error_source,
        step_key as reference_id,
        cast(null as {{ dbt.type_int() }}) as error_position,
        updated_at as occurred_at,
        coalesce(message, node_type) as error,
        node_name as detail,
        status as severity,
        workflow_slug,
        tenant_id,
        cast(null as {{ dbt.type_string() }}) as channel_slug,
        idempotency_key
    from {{ ref('workflow_executions') }}
    where status in ('error', 'warning')
),

message_failures as (
    select
        case when message_status = 'delivery_failed' then 'delivery' else 'message_execution' end as error_source,
        message_key as reference_id,
        cast(null as {{ dbt.type_int() }}) as error_position,
        updated_at as occurred_at,
        coalesce(delivery_failure_reason, 'execution failed') as error,
        coalesce(vendor_slug, cast(execution_failure_reason as {{ dbt.type_string() }})) as detail,
        'error' as severity,
        workflow_slug,
        tenant_id,
        channel_slug,
        idempotency_key
    from {{ ref('messages') }}
    where message_status = 'delivery_failed' or execution_failure_reason is not null
)

select
    {{ notif_export.key_of(['error_source', 'reference_id', 'cast(error_position as ' ~ dbt.type_string() ~ ')']) }} as error_event_key,
    *
from (
    select * from request_errors
    union all
    select * from step_issues
    union all
    select * from message_failures
) as all_errors
