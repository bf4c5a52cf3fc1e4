{#- Which exported rows a build reads.

On DuckDB a full build reads every file; an incremental build reads only the files whose
version (name and modification time) it has not loaded yet (an hour's file is rewritten whole
whenever one of its rows changes, so those files hold every changed row). A file loaded in the
second it was modified, before the build that read it began, is read again, since a second
write in that second would keep its time: merging twice is harmless, missing is not. A build
with nothing changed reads no file.

Other warehouses cannot see file modification times: they re-read the rows updated within
`incremental_lookback_hours` of the newest row already loaded. -#}

{#- A data point's files, as its staging model reads them. On DuckDB a data point that is not
exported (NOTIF_EXPORT_DATA_POINTS) or has no file yet is an empty relation with the contract's
columns, since read_parquet fails on a glob that matches nothing: a messages-only export, or one
whose first hour is not written yet, still builds, with empty tables for what it lacks. The
staging views are recreated on every build, so the first build after the files appear reads them
(the empty latest-state tables have no watermark yet). -#}
{% macro export_source(data_point) -%}
  {%- if target.type == 'duckdb' and execute and not notif_export.has_export_files(data_point) -%}
  (select
    {%- for column, type in fromjson(env_var('NOTIF_EXPORT_DBT_COLUMNS'))[data_point].items() %}
    cast(null as {{ type }}) as {{ column }},
    {%- endfor %}
    cast(null as varchar) as {{ notif_export.source_file_column() }}
  where false)
  {%- else -%}
  {{ source('notif_export', data_point) }}
  {%- endif -%}
{%- endmacro %}

{% macro has_export_files(data_point) -%}
  {%- if data_point not in env_var('NOTIF_EXPORT_DBT_DATA_POINTS').split(',') -%}{{ return(false) }}{%- endif -%}
  {%- set files = env_var('NOTIF_EXPORT_DBT_FILES') | replace('{name}', data_point) -%}
  {{ return(run_query("select 1 from glob('" ~ files ~ "') limit 1").rows | length > 0) }}
{%- endmacro %}

{% macro export_rows(data_point) -%}
  {{ return(adapter.dispatch('export_rows', 'notif_export')(data_point)) }}
{%- endmacro %}

{% macro duckdb__export_rows(data_point) -%}
  {%- set files = notif_export.changed_export_files(data_point) -%}
  {%- if not files and notif_export.is_incremental_build() -%}
  {#- Nothing to merge: the table's own columns, without binding the staging view (which opens
      every file's footer to unite their schemas). #}
  select * from {{ this }} where false
  {%- else -%}
  select staged.*, files.last_modified as _file_modified_at, {{ notif_export.built_at() }} as _built_at
  from {{ ref('stg_' ~ data_point) }} as staged
  join {{ ref('stg_export_files') }} as files on staged._source_file = files.filename
  {#- A literal list, so DuckDB skips the other files without opening them. #}
  where {% if files %}staged._source_file in ({% for f in files %}'{{ f }}'{{ ", " if not loop.last }}{% endfor %}){% else %}false{% endif %}
  {%- endif %}
{%- endmacro %}

{% macro default__export_rows(data_point) -%}
  select staged.*, cast(null as {{ dbt.type_timestamp() }}) as _file_modified_at, {{ notif_export.built_at() }} as _built_at
  from {{ ref('stg_' ~ data_point) }} as staged
  {% if notif_export.is_incremental_build() -%}
  where staged.updated_at >= (
    select {{ dbt.dateadd('hour', -1 * var('incremental_lookback_hours'), 'max(updated_at)') }} from {{ this }}
  )
  {%- endif %}
{%- endmacro %}

{#- The files whose version (name and modification time) the table has not loaded, and those it
    loaded in the very second they were modified before the build that read them began: another
    write in that second would not change the time. A table from before `_built_at` falls back
    on its newest file's time. -#}
{% macro changed_export_files(data_point) -%}
  {%- if not execute -%}{{ return([]) }}{%- endif -%}
  {%- set built = notif_export.newest_in_this('_built_at') -%}
  {%- set watermark = none if built else notif_export.newest_in_this('_file_modified_at') -%}
  {%- set query -%}
    select filename from {{ ref('stg_export_files') }} as files
    where data_point = '{{ data_point }}'
    {%- if built %} and not exists (
      select 1 from (select distinct _source_file, _file_modified_at, _built_at from {{ this }}) as loaded
      where loaded._source_file = files.filename and loaded._file_modified_at = files.last_modified
        and loaded._file_modified_at < date_trunc('second', loaded._built_at))
    {%- elif watermark %} and last_modified >= cast('{{ watermark }}' as timestamptz){% endif %}
    order by filename
  {%- endset -%}
  {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}

{#- `--vars '{offline: true}'` renders every model as a full build without asking the warehouse
    whether its table exists, so `dbt compile` checks the SQL of a target without credentials. -#}
{% macro is_incremental_build() -%}
  {{ return(false if var('offline', false) else is_incremental()) }}
{%- endmacro %}
