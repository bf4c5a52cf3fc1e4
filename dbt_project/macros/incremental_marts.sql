{#- On DuckDB the marts are incremental as well (the other warehouses cannot see file times and
rebuild them in full). Each row keeps `_built_at`, the start of the dbt invocation that wrote it
(macros/tests_of_changes.sql); the newest in a mart is its watermark, and a build recomputes only
what the latest-state rows written since then touch: those of a build whose marts failed are
taken up by the next one, and a build that loaded nothing recomputes nothing. (Each row also
keeps `_source_modified_at`, the modification time of the newest export file it was computed
from.)

Summaries are recomputed a whole period at a time (strategy `replace_periods`, below): the
changed periods are deleted and appended again in one transaction, so a group that lost its
last row (a failure that was retried and delivered, a vendor that changed) leaves nothing stale
behind. -#}

{#- The newest value of a bookkeeping column in the model's table; none on a full build, and
    for a table built before the column existed, so that it is recomputed in full. -#}
{% macro newest_in_this(column) -%}
  {%- if not (execute and notif_export.is_incremental_build()) -%}{{ return(none) }}{%- endif -%}
  {%- if column not in adapter.get_columns_in_relation(this) | map(attribute='name') -%}{{ return(none) }}{%- endif -%}
  {{ return(run_query("select max(" ~ column ~ ") from " ~ this).columns[0].values()[0]) }}
{%- endmacro %}

{#- True for the rows written since the model's watermark (all rows on a full build, or when the
    model is empty or older than `_built_at`). -#}
{% macro loaded_since_last_build(built_at='_built_at') -%}
  {%- set watermark = notif_export.newest_in_this('_built_at') -%}
  {%- if watermark is none -%} true
  {%- else -%} {{ built_at }} > cast('{{ watermark }}' as {{ dbt.type_timestamp() }})
  {%- endif -%}
{%- endmacro %}

{#- The periods (by created_at) holding rows loaded since the mart's watermark, from the given
    latest-state models. -#}
{% macro changed_periods(grain, models) -%}
  {%- set loaded_since = notif_export.loaded_since_last_build() -%}
  {%- for model in models %}
  select {{ dbt.date_trunc(grain, 'created_at') }} from {{ ref(model) }} where {{ loaded_since }}
  {%- if not loop.last %} union{% endif %}
  {%- endfor %}
{%- endmacro %}

{#- On an incremental build, true for the rows of the changed periods the model names in
    meta.replaced_periods (by default, the period of the row's created_at). -#}
{% macro in_changed_periods(period=none) -%}
  {%- if notif_export.is_incremental_build() -%}
  {%- set periods = config.get('meta')['replaced_periods'] -%}
  {{ period or dbt.date_trunc(periods['grain'], 'created_at') }} in ({{ notif_export.changed_periods(periods['grain'], periods['sources']) }})
  {%- else -%} true
  {%- endif -%}
{%- endmacro %}

{#- The incremental strategy `replace_periods`: deletes the changed periods (everything, when the
    table has no watermark yet), then appends the recomputed rows. The model names its period
    column, grain and sources in meta.replaced_periods. It runs after dbt has added any new
    columns: DuckDB cannot alter a table that the same transaction already deleted from. -#}
{% macro get_incremental_replace_periods_sql(arg_dict) -%}
  {%- set periods = config.get('meta')['replaced_periods'] -%}
  delete from {{ arg_dict['target_relation'] }}
  {%- if notif_export.newest_in_this('_built_at') is not none %}
  where {{ notif_export.in_changed_periods(periods['column']) }}
  {%- endif %};
  {{ get_incremental_append_sql(arg_dict) }}
{%- endmacro %}
