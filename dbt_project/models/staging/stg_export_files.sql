{{ config(materialized='table', enabled=target.type == 'duckdb') }}
{#- File listing only: DuckDB does not read the files' contents for these columns, but asks the
    bucket for each file's time and size, which costs seconds at thousands of files: a table, so
    that a build lists the bucket once and every model and test reads the same listing. A data point
    left out of NOTIF_EXPORT_DATA_POINTS is read as empty (macros/export_files.sql), so its files
    are left out here too: an incremental build then drops its rows, as a full build would. #}
select * from (
    select
        filename,
        regexp_extract(filename, '/([a-z_]+)\.parquet$', 1) as data_point,
        last_modified,
        size as bytes
    from read_blob('{{ env_var("NOTIF_EXPORT_DBT_FILES") | replace("{name}", "*") }}')
) as files
where data_point in ('{{ env_var("NOTIF_EXPORT_DBT_DATA_POINTS").split(",") | join("', '") }}')
