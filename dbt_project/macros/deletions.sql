{#- Rows deleted from the source (a person's right to erasure) leave the export's files when
their hour is rewritten, or with the whole file when the hour is left without rows. On DuckDB an
incremental build then drops them too: a latest-state row whose file, at the modification time
it was read from, is no longer in the bucket came from an older version of a rewritten file (and
was not in the new one) or from a deleted file. A file rewritten during the build itself has its
rows dropped here and read again by the next build (its modification time is past the watermark).

BigQuery and Athena cannot see file modification times: there a `--full-refresh` drops them. -#}
{% macro delete_rows_gone_from_files() -%}
  {%- if target.type == 'duckdb' and notif_export.is_incremental_build() -%}
  delete from {{ this }} where rowid in (
    select kept.rowid from {{ this }} as kept
    anti join {{ ref('stg_export_files') }} as files
      on files.filename = kept._source_file and files.last_modified = kept._file_modified_at
  )
  {%- endif -%}
{%- endmacro %}

{#- The same for a model keyed by `key` that is computed from `parent`: its keys no longer in the
    parent (an anti join: a null key in the parent must not keep everything). -#}
{% macro delete_keys_gone(key, parent) -%}
  {%- if target.type == 'duckdb' and notif_export.is_incremental_build() -%}
  delete from {{ this }} where rowid in (
    select kept.rowid from {{ this }} as kept anti join {{ parent }} as parent on parent.{{ key }} = kept.{{ key }}
  )
  {%- endif -%}
{%- endmacro %}
