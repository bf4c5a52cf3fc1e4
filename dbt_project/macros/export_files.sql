{#- Which exported rows a build reads.

On DuckDB a full build reads every file; an incremental build reads only the files modified
since the newest file it has already loaded (an hour's file is rewritten whole whenever one of
its rows changes, so those files hold every changed row). Files modified in the same second as
that watermark are read again: merging them twice is harmless, missing one is not.

Other warehouses cannot see file modification times: they re-read the rows updated within
`incremental_lookback_hours` of the newest row already loaded. -#}

{% macro export_rows(data_point) -%}
  {{ return(adapter.dispatch('export_rows', 'notif_export')(data_point)) }}
{%- endmacro %}

{% macro duckdb__export_rows(data_point) -%}
  {%- set files = notif_export.changed_export_files(data_point) -%}
  select staged.*, files.last_modified as _file_modified_at
  from {{ ref('stg_' ~ data_point) }} as staged
  join {{ ref('stg_export_files') }} as files on staged._source_file = files.filename
  {#- A literal list, so DuckDB skips the other files without opening them. #}
  where {% if files %}staged._source_file in ({% for f in files %}'{{ f }}'{{ ", " if not loop.last }}{% endfor %}){% else %}false{% endif %}
{%- endmacro %}

{% macro default__export_rows(data_point) -%}
  select staged.*, cast(null as {{ dbt.type_timestamp() }}) as _file_modified_at
  from {{ ref('stg_' ~ data_point) }} as staged
  {% if notif_export.is_incremental_build() -%}
  where staged.updated_at >= (
    select {{ dbt.dateadd('hour', -1 * var('incremental_lookback_hours'), 'max(updated_at)') }} from {{ this }}
  )
  {%- endif %}
{%- endmacro %}

{% macro changed_export_files(data_point) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set watermark = notif_export.newest_in_this('_file_modified_at') -%}
  {%- set query -%}
    select filename from {{ ref('stg_export_files') }}
    where data_point = '{{ data_point }}'
    {%- if watermark %} and last_modified >= cast('{{ watermark }}' as timestamptz){% endif %}
    order by filename
  {%- endset -%}
  {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}

{#- `--vars '{offline: true}'` renders every model as a full build without asking the warehouse
    whether its table exists, so `dbt compile` checks the SQL of a target without credentials. -#}
{% macro is_incremental_build() -%}
  {{ return(false if var('offline', false) else is_incremental()) }}
{%- endmacro %}
