{#- DuckDB sees the export files' modification times, so it recomputes only what changed
    (macros/incremental_marts.sql); other warehouses rebuild the table in full. #}
{{ config(materialized=('incremental' if target.type == 'duckdb' else 'table'), on_schema_change='append_new_columns') }}
{{ notif_export.delivery_summary('hour') }}
