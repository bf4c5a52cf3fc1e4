{#- On DuckDB a table that each build updates for the executions with steps written since its
    watermark (macros/incremental_marts.sql); a view elsewhere. #}
{{ config(materialized=('incremental' if target.type == 'duckdb' else 'view'),
          unique_key='execution_id',
          incremental_strategy='delete+insert',
          on_schema_change='append_new_columns',
          post_hook="{{ notif_export.delete_keys_gone('execution_id', ref('int_workflow_executions__latest')) }}") }}
{%- set watermark = notif_export.newest_in_this('_built_at') %}
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
    max(_file_modified_at) as _file_modified_at,
    {{ notif_export.built_at() }} as _built_at
from {{ ref('int_workflow_executions__latest') }}
{%- if watermark is not none %}
where execution_id in (
    select execution_id from {{ ref('int_workflow_executions__latest') }}
    where {{ notif_export.loaded_since_last_build() }}
)
{%- endif %}
group by execution_id
