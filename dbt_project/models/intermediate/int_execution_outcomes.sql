{{ config(materialized='view') }}
-- One row per workflow execution: how its steps ended.
select
    execution_id,
    min(idempotency_key) as idempotency_key,
    min(workflow_slug) as workflow_slug,
    min(created_at) as started_at,
    max(updated_at) as last_updated_at,
    count(*) as steps,
    sum(case when status = 'error' then 1 else 0 end) as error_steps,
    sum(case when status = 'warning' then 1 else 0 end) as warning_steps,
    case
        when sum(case when status = 'error' then 1 else 0 end) > 0 then 'error'
        when sum(case when status = 'warning' then 1 else 0 end) > 0 then 'warning'
        else 'ok'
    end as outcome,
    max(_file_modified_at) as _file_modified_at
from {{ ref('int_workflow_executions__latest') }}
group by execution_id
