{{ config(materialized='view', enabled=target.type == 'duckdb') }}
{#- File listing only: DuckDB does not read the files' contents for these columns. #}
select
    filename,
    regexp_extract(filename, '/([a-z_]+)\.parquet$', 1) as data_point,
    last_modified,
    size as bytes
from read_blob('{{ env_var("NOTIF_EXPORT_DBT_FILES") | replace("{name}", "*") }}')
