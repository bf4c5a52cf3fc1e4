{{ notif_export.delivery_summary('hour') }}
