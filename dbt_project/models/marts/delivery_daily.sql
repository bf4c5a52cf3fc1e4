{{ notif_export.delivery_summary('day') }}
