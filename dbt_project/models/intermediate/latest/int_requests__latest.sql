{{ config(unique_key='idempotency_key') }}
-- depends_on: {{ ref('stg_requests') }}
{{ notif_export.latest_per_key('(' ~ notif_export.export_rows('requests') ~ ') as exported', 'idempotency_key') }}
