{#- DuckDB sees the export files' modification times, so it recomputes only what changed
    (macros/incremental_marts.sql); other warehouses rebuild the table in full. #}
{{ config(materialized=('incremental' if target.type == 'duckdb' else 'table'),
          incremental_strategy='replace_periods',
          on_schema_change='append_new_columns',
          meta={'replaced_periods': {'column': 'source_hour', 'grain': 'hour', 'sources': [
              'int_requests__latest', 'int_workflow_executions__latest', 'int_messages__latest']}}) }}
-- Every error, one row each (keyed by where it arose and its position there): request errors (unnested), workflow steps that logged an error or a
-- warning, and messages whose execution or delivery failed, with the reason given.
-- Incremental builds recompute the hours (of the rows' creation, as the export files are cut) whose files changed;
-- each source is filtered to them before the union, so that only their rows are read.
-- depends_on: {{ ref('int_requests__latest') }}
{#- The columns every kind of error has, named alike in each source; they come last, where
    `select *` lines the branches of the union up. #}
{%- set shared_columns -%}
workflow_slug,
        tenant_id,
        idempotency_key,
        {{ dbt.date_trunc('hour', 'created_at') }} as source_hour,
        _file_modified_at as _source_modified_at,
        {{ notif_export.built_at() }} as _built_at
{%- endset %}
with request_errors as (
    select
        'request' as error_source,
        idempotency_key as reference_id,
        error_position,
        created_at as occurred_at,
        coalesce(error_code, error_type) as error,
        error_description as detail,
        severity,
        cast(null as {{ dbt.type_string() }}) as channel_slug,
        {{ shared_columns }}
    from {{ ref('int_request_errors__unnested') }}
    where {{ notif_export.in_changed_periods() }}
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
        cast(null as {{ dbt.type_string() }}) as channel_slug,
        {{ shared_columns }}
    from {{ ref('int_workflow_executions__latest') }}
    where status in ('error', 'warning') and {{ notif_export.in_changed_periods() }}
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
        channel_slug,
        {{ shared_columns }}
    from {{ ref('int_messages__latest') }}
    where (message_status = 'delivery_failed' or execution_failure_reason is not null)
        and {{ notif_export.in_changed_periods() }}
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
