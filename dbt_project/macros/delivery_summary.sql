{#- Delivery funnel of the messages created in each period (hour or day), by channel, vendor,
    workflow and tenant. Rates divide by the previous step; times are seconds from triggered.
    Incremental builds recompute the periods whose messages changed (see incremental_marts.sql). -#}
{% macro delivery_summary(grain) -%}
{{ config(incremental_strategy='replace_periods',
          meta={'replaced_periods': {'column': 'period_start', 'grain': grain, 'sources': ['int_messages__latest']}}) }}
{%- set dimensions = ['channel_slug', 'vendor_slug', 'workflow_slug', 'tenant_id'] -%}
{%- set to_delivered = dbt.datediff('message_triggered_at', 'message_delivered_at', 'second') -%}
{%- set to_seen = dbt.datediff('message_triggered_at', 'message_seen_at', 'second') -%}
with by_period as (
    select
        {{ dbt.date_trunc(grain, 'created_at') }} as period_start,
        {{ dimensions | join(', ') }},
        count(*) as messages,
        count(message_triggered_at) as triggered,
        count(message_delivered_at) as delivered,
        count(message_seen_at) as seen,
        count(message_clicked_at) as clicked,
        sum(case when message_status = 'delivery_failed' then 1 else 0 end) as failed,
        {{ notif_export.percentile(to_delivered, 0.5) }} as time_to_deliver_p50_seconds,
        {{ notif_export.percentile(to_delivered, 0.9) }} as time_to_deliver_p90_seconds,
        {{ notif_export.percentile(to_delivered, 0.99) }} as time_to_deliver_p99_seconds,
        {{ notif_export.percentile(to_seen, 0.5) }} as time_to_seen_p50_seconds,
        {{ notif_export.percentile(to_seen, 0.9) }} as time_to_seen_p90_seconds,
        max(_file_modified_at) as _source_modified_at,
        {{ notif_export.built_at() }} as _built_at
    from {{ ref('int_messages__latest') }}
    where {{ notif_export.in_changed_periods() }}
    group by {{ dbt.date_trunc(grain, 'created_at') }}, {{ dimensions | join(', ') }}
)
select
    {{ notif_export.key_of(['cast(period_start as ' ~ dbt.type_string() ~ ')'] + dimensions) }} as delivery_key,
    *,
    {{ notif_export.ratio('delivered', 'triggered') }} as delivery_rate,
    {{ notif_export.ratio('seen', 'delivered') }} as seen_rate,
    {{ notif_export.ratio('clicked', 'seen') }} as click_rate,
    {{ notif_export.ratio('failed', 'triggered') }} as failure_rate
from by_period
{%- endmacro %}

{% macro ratio(numerator, denominator) -%}
  cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}
