"""Resources for the export: the source database and the S3 destination."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import ValidationInfo, field_validator

from notif_export.lib import settings
from notif_export.lib.export import Destination
from notif_export.lib.source import SourceDatabase


_VALIDATORS = {
    "bucket": settings.validate_bucket,
    "prefix": settings.validate_prefix,
    "layout": settings.validate_layout,
    "compression": settings.validate_compression,
}


class SourceResource(dg.ConfigurableResource):
    """The notification log database (`NOTIF_EXPORT_SOURCE_URL`)."""

    url: str

    def open(self) -> SourceDatabase:
        return SourceDatabase(self.url)


class DestinationResource(dg.ConfigurableResource):
    """Where the files go: bucket, key prefix, layout and compression, over an S3 connection."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    layout: str = "shared"
    compression: str = "snappy"

    @field_validator("bucket", "prefix", "layout", "compression")
    @classmethod
    def _validate(cls, value: str, info: ValidationInfo) -> str:
        # The same checks as the environment settings, so a launchpad edit is refused the same way.
        return _VALIDATORS[info.field_name](value)

    @property
    def destination(self) -> Destination:
        return Destination(
            bucket=self.bucket, prefix=self.prefix, layout=self.layout, compression=self.compression
        )

    def client(self) -> Any:
        return self.s3.get_client()


def s3_resource(config: settings.Settings, env: dict[str, str]) -> S3Resource:
    """An S3 connection from the settings; secrets stay environment references, never values."""
    secrets = {
        field: dg.EnvVar(var)
        for field, var in (
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_session_token", "AWS_SESSION_TOKEN"),
        )
        if env.get(var)
    }
    return S3Resource(region_name=config.region, endpoint_url=config.endpoint_url, **secrets)


def build_resources(config: settings.Settings, env: dict[str, str]) -> dict[str, Any]:
    return {
        "source": SourceResource(url=config.source_url),
        "destination": DestinationResource(
            s3=s3_resource(config, env),
            bucket=config.bucket,
            prefix=config.prefix,
            layout=config.layout,
            compression=config.compression,
        ),
    }
