-- Error counts over time, by where the error arose, what it was, and the workflow.
-- A full table on every build: an error's hour (occurred_at) can move, and the table is small.
{{ config(materialized='table') }}
{%- set dimensions = ['error_source', 'error', 'severity', 'workflow_slug'] %}
select
    {{ notif_export.key_of(['cast(' ~ dbt.date_trunc('hour', 'occurred_at') ~ ' as ' ~ dbt.type_string() ~ ')'] + dimensions) }} as errors_hourly_key,
    {{ dbt.date_trunc('hour', 'occurred_at') }} as hour_start,
    {{ dimensions | join(', ') }},
    count(*) as events,
    count(distinct idempotency_key) as requests_affected
from {{ ref('error_events') }}
group by {{ dbt.date_trunc('hour', 'occurred_at') }}, {{ dimensions | join(', ') }}
