"""Settings: defaults and the errors a bad value gets."""

from datetime import datetime, timedelta, timezone

import pytest

from notif_export.lib.settings import Settings, SettingsError
from notif_export.lib.sync import ColdCadence


def test_defaults(tmp_path):
    config = Settings.from_env({"NOTIF_EXPORT_HOME": str(tmp_path)}, now=datetime(2026, 11, 24, 9, tzinfo=timezone.utc))
    assert config.source_url == f"sqlite:///{tmp_path / 'source.db'}"
    assert (config.destination.bucket, config.destination.prefix, config.destination.layout, config.destination.compression) == ("notif-export", "", "shared", "snappy")
    assert config.data_points == ("requests", "workflow_executions", "messages")
    assert config.start_key == "2026-11-17-00:00"
    assert config.sync_interval_seconds == 300
    assert config.sync_commit_grace_seconds == 30
    assert config.cold_cadence is None                     # every dirty hour at every tick
    assert config.bucket_access.endpoint_url is None


def test_values_are_normalized():
    config = Settings.from_env({
        "NOTIF_EXPORT_PREFIX": "exports/suprsend", "NOTIF_EXPORT_COMPRESSION": "ZSTD",
        "NOTIF_EXPORT_START": "2025-01-15-14:00", "NOTIF_EXPORT_DATA_POINTS": "messages, requests",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_REGION": "eu-west-1",
    })
    assert config.destination.prefix == "exports/suprsend/"
    assert config.destination.compression == "zstd"
    assert config.start == datetime(2025, 1, 15, 14, tzinfo=timezone.utc)
    assert config.data_points == ("messages", "requests")
    assert (config.bucket_access.endpoint_url, config.bucket_access.region_name) == ("http://127.0.0.1:8333", "eu-west-1")


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("NOTIF_EXPORT_LAYOUT", "flat", "use one of: shared, per_type"),
        ("NOTIF_EXPORT_COMPRESSION", "lzma", "use one of: snappy, lz4, gzip, zstd, brotli, none"),
        ("NOTIF_EXPORT_BUCKET", "My_Bucket", "not a valid S3 bucket name"),
        ("NOTIF_EXPORT_BUCKET", "192.168.1.1", "not formatted as an IP address"),
        ("NOTIF_EXPORT_PREFIX", "/abs", "must not start with '/'"),
        ("NOTIF_EXPORT_DATA_POINTS", "messages,emails", "unknown emails"),
        ("NOTIF_EXPORT_START", "yesterday", "is not an hour"),
        ("NOTIF_EXPORT_SYNC_INTERVAL_SECONDS", "5m", "whole number of seconds"),
        ("NOTIF_EXPORT_SYNC_COMMIT_GRACE_SECONDS", "-1", "whole number of seconds, at least 1"),
        ("NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS", "3d", "whole number of hours"),
        ("NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES", "60", "without NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS"),
        ("AWS_REGION", "us-middle-1", "is not an AWS region"),
        ("NOTIF_EXPORT_STORAGE_CLASS", "DEEP_FREEZE", "use one of: STANDARD, STANDARD_IA, ONEZONE_IA"),
        ("NOTIF_EXPORT_SSE", "rot13", "use AES256 (SSE-S3, the default) or aws:kms"),
        ("NOTIF_EXPORT_SSE", "aws:kms", "needs NOTIF_EXPORT_KMS_KEY_ID"),
        ("NOTIF_EXPORT_ROLE_ARN", "arn:aws:iam::123456789012:role/exporter", "without NOTIF_EXPORT_EXTERNAL_ID"),
        ("NOTIF_EXPORT_ROLE_ARN", "exporter", "use arn:aws:iam::<12-digit account>:role/<name>"),
        ("AWS_ENDPOINT_URL", "http://minio.internal:9000", "HTTPS is required"),
        ("AWS_ENDPOINT_URL_STS", "http://sts.internal", "HTTPS is required"),
        ("NOTIF_EXPORT_DBT_TARGET", "snowflake", "use one of: duckdb, bigquery, athena"),
        ("NOTIF_EXPORT_INTAKE_PROCESSES", "none", "whole number of processes"),
        ("NOTIF_EXPORT_INTAKE_PROCESSES", "2", "needs a PostgreSQL source"),  # the default source is SQLite
    ],
)
def test_bad_value_names_the_setting_and_the_fix(name, value, says):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert name in str(err.value) and says in str(err.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"NOTIF_EXPORT_LAYOUT": "flat", "NOTIF_EXPORT_COMPRESSION": "lzma"})
    assert "NOTIF_EXPORT_LAYOUT" in str(err.value) and "NOTIF_EXPORT_COMPRESSION" in str(err.value)


def test_bucket_access_settings():
    config = Settings.from_env({
        "NOTIF_EXPORT_SSE": "SSE-KMS", "NOTIF_EXPORT_KMS_KEY_ID": "alias/notif-export",
        "NOTIF_EXPORT_STORAGE_CLASS": "glacier_ir", "NOTIF_EXPORT_ROLE_ARN": "arn:aws:iam::123456789012:role/exporter",
        "NOTIF_EXPORT_EXTERNAL_ID": "suprsend-7f3a", "AWS_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com",
        "AWS_REGION": "eu-central-1",
    })
    assert (config.destination.sse, config.destination.kms_key_id, config.destination.storage_class) == ("aws:kms", "alias/notif-export", "GLACIER_IR")
    assert config.bucket_access.role_arn == "arn:aws:iam::123456789012:role/exporter"
    assert Settings.from_env({}).destination.sse == "AES256"  # every write is encrypted unless told otherwise
    # plain HTTP only on this machine; a compatible server names its regions freely
    local = Settings.from_env({"AWS_ENDPOINT_URL": "http://localhost:8333", "AWS_REGION": "garage"})
    assert (local.bucket_access.endpoint_url, local.bucket_access.region_name) == ("http://localhost:8333", "garage")


def test_a_bad_external_id_is_refused_without_showing_it():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"NOTIF_EXPORT_ROLE_ARN": "arn:aws:iam::123456789012:role/exporter",
                           "NOTIF_EXPORT_EXTERNAL_ID": "has spaces #secret"})
    assert "NOTIF_EXPORT_EXTERNAL_ID is not a valid External ID" in str(err.value)
    assert "#secret" not in str(err.value)


def test_the_cold_cadence_needs_an_interval_longer_than_the_syncs():
    config = Settings.from_env({"NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS": "24"})
    assert config.cold_cadence == ColdCadence(after=timedelta(hours=24), every=timedelta(minutes=60))
    with pytest.raises(SettingsError, match="not longer than the sync interval"):
        Settings.from_env({"NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS": "24", "NOTIF_EXPORT_SYNC_COLD_REWRITE_MINUTES": "5"})
