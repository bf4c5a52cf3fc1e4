{#- A build's tests check what the build wrote, so their cost follows the change, not the
table's size. Every row of the latest-state tables, and of the marts and views read from them,
carries `_built_at`, the start of the dbt invocation that last wrote it; on DuckDB a test in
`dbt build` reads only the rows of its model with this invocation's `_built_at` (all of them on a
full build). The other models (no such column) and `dbt test` check every row.

What this leaves out was checked when it was written: the latest-state tables replace a key's
row whole (delete+insert on the unique key), so a key written now cannot meet an older row of the
same key. -#}

{% macro built_at() -%}
  cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__get_where_subquery(relation) -%}
  {%- set where = config.get('where', '') -%}
  {%- if execute and flags.WHICH == 'build' and not flags.FULL_REFRESH
        and '_built_at' in adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- set built = '_built_at = ' ~ notif_export.built_at() -%}
    {%- set where = '(' ~ where ~ ') and ' ~ built if where else built -%}
  {%- endif -%}
  {%- if where -%}
    {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
  {%- else -%}
    {{ return(relation) }}
  {%- endif -%}
{%- endmacro %}
