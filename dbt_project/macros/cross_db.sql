{#- The few expressions that differ between DuckDB, BigQuery and Athena (Trino). -#}

{% macro parse_json(column) -%}
  {{ return(adapter.dispatch('parse_json', 'notif_export')(column)) }}
{%- endmacro %}
{% macro default__parse_json(column) -%} try(json_parse({{ column }})) {%- endmacro %}
{% macro duckdb__parse_json(column) -%} case when json_valid({{ column }}) then cast({{ column }} as json) end {%- endmacro %}
{% macro bigquery__parse_json(column) -%} safe.parse_json({{ column }}) {%- endmacro %}

{% macro percentile(expression, fraction) -%}
  {{ return(adapter.dispatch('percentile', 'notif_export')(expression, fraction)) }}
{%- endmacro %}
{% macro default__percentile(expression, fraction) -%} approx_percentile({{ expression }}, {{ fraction }}) {%- endmacro %}
{% macro duckdb__percentile(expression, fraction) -%} quantile_cont({{ expression }}, {{ fraction }}) {%- endmacro %}
{% macro bigquery__percentile(expression, fraction) -%}
  approx_quantiles({{ expression }}, 100)[offset({{ (fraction * 100) | int }})]
{%- endmacro %}

{#- Joins one row per element of an array of structs, with its 1-based position as
    <alias>_position; read its fields with unnested(). Trino expands a row's fields into
    columns, so it has to be given their names. -#}
{% macro unnest_join(array_expression, alias, fields) -%}
  {{ return(adapter.dispatch('unnest_join', 'notif_export')(array_expression, alias, fields)) }}
{%- endmacro %}
{% macro default__unnest_join(array_expression, alias, fields) -%}
  cross join unnest({{ array_expression }}) with ordinality as {{ alias }}_rows({% for f in fields %}{{ alias }}__{{ f }}, {% endfor %}{{ alias }}_position)
{%- endmacro %}
{% macro duckdb__unnest_join(array_expression, alias, fields) -%}
  cross join unnest({{ array_expression }}) with ordinality as {{ alias }}_rows({{ alias }}, {{ alias }}_position)
{%- endmacro %}
{% macro bigquery__unnest_join(array_expression, alias, fields) -%}
  cross join unnest({{ array_expression }}) as {{ alias }} with offset as {{ alias }}_offset
{%- endmacro %}

{% macro unnest_position(alias) -%}
  {{ return(adapter.dispatch('unnest_position', 'notif_export')(alias)) }}
{%- endmacro %}
{% macro default__unnest_position(alias) -%} {{ alias }}_position {%- endmacro %}
{% macro bigquery__unnest_position(alias) -%} ({{ alias }}_offset + 1) {%- endmacro %}

{% macro unnested(alias, field) -%}
  {{ return(adapter.dispatch('unnested', 'notif_export')(alias, field)) }}
{%- endmacro %}
{% macro default__unnested(alias, field) -%} {{ alias }}__{{ field }} {%- endmacro %}
{% macro duckdb__unnested(alias, field) -%} {{ alias }}.{{ field }} {%- endmacro %}
{% macro bigquery__unnested(alias, field) -%} {{ alias }}.{{ field }} {%- endmacro %}

{#- The object a row was read from: its file's modification time decides incremental builds. -#}
{% macro source_file_column() -%}
  {{ return(adapter.dispatch('source_file_column', 'notif_export')()) }}
{%- endmacro %}
{% macro default__source_file_column() -%} "$path" {%- endmacro %}
{% macro duckdb__source_file_column() -%} filename {%- endmacro %}
{% macro bigquery__source_file_column() -%} _FILE_NAME {%- endmacro %}

{#- A stable text key from the contract's key columns (a null counts as an empty string). -#}
{% macro key_of(columns) -%}
  {%- set parts = [] -%}
  {%- for column in columns -%}
    {%- do parts.append("coalesce(" ~ column ~ ", '')") -%}
    {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
  {%- endfor -%}
  {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{#- One row per key: the one with the latest updated_at (then the latest file). Trino has no
    QUALIFY, so it keeps the row number as an extra column. -#}
{% macro latest_per_key(relation, key) -%}
  {{ return(adapter.dispatch('latest_per_key', 'notif_export')(relation, key)) }}
{%- endmacro %}
{% macro default__latest_per_key(relation, key) -%}
  select * from (
    select *, row_number() over (partition by {{ key }} order by updated_at desc, _file_modified_at desc) as _row_rank
    from {{ relation }}
  ) as ranked
  where _row_rank = 1
{%- endmacro %}
{% macro duckdb__latest_per_key(relation, key) -%}
  select * from {{ relation }}
  where true
  qualify row_number() over (partition by {{ key }} order by updated_at desc, _file_modified_at desc nulls last) = 1
{%- endmacro %}
{% macro bigquery__latest_per_key(relation, key) -%}
  {{ notif_export.duckdb__latest_per_key(relation, key) }}
{%- endmacro %}

{#- Every column but the bookkeeping ones (which file a row came from, when it was written).
    Trino cannot exclude columns, so Athena keeps them. -#}
{% macro star_without(columns) -%}
  {{ return(adapter.dispatch('star_without', 'notif_export')(columns)) }}
{%- endmacro %}
{% macro default__star_without(columns) -%} * {%- endmacro %}
{% macro duckdb__star_without(columns) -%} * exclude ({{ columns | join(', ') }}) {%- endmacro %}
{% macro bigquery__star_without(columns) -%} * except ({{ columns | join(', ') }}) {%- endmacro %}
