-- End to end, one row per message: its request's status and its workflow execution's outcome.
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
    executions.warning_steps as execution_warning_steps
from {{ ref('messages') }} as messages
left join {{ ref('requests') }} as requests
    on messages.idempotency_key = requests.idempotency_key
left join {{ ref('int_execution_outcomes') }} as executions
    on messages.wf_execution_id = executions.execution_id
