"""notif_export: notification delivery logs, exported hour by hour to S3 as Parquet."""
