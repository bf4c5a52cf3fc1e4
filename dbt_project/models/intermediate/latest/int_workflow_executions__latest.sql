{{ config(unique_key='step_key') }}
-- depends_on: {{ ref('stg_workflow_executions') }}
{{ notif_export.latest_per_key('(' ~ notif_export.export_rows('workflow_executions') ~ ') as exported', 'step_key') }}
