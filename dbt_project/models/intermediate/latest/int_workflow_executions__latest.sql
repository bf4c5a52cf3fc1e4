{#- One row per key in its latest state; each build merges only what changed (Athena merges
    only into Iceberg tables). #}
{{ config(
    materialized='incremental',
    unique_key='step_key',
    incremental_strategy=('delete+insert' if target.type == 'duckdb' else 'merge'),
    table_type=('iceberg' if target.type == 'athena' else 'hive'),
    on_schema_change='append_new_columns',
    post_hook="{{ notif_export.delete_rows_gone_from_files() }}"
) }}
-- depends_on: {{ ref('stg_workflow_executions') }}
{{ notif_export.latest_per_key('(' ~ notif_export.export_rows('workflow_executions') ~ ') as exported', 'step_key') }}
