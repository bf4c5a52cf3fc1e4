{{ config(unique_key='message_key') }}
-- depends_on: {{ ref('stg_messages') }}
{{ notif_export.latest_per_key('(' ~ notif_export.export_rows('messages') ~ ') as exported', 'message_key') }}
