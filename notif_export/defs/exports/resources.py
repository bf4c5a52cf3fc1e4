"""Resources for the export: the source database and the S3 destination."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import ValidationInfo, field_validator
from sqlalchemy.engine import make_url

from notif_export.lib import settings
from notif_export.lib.aws import BucketAccess
from notif_export.lib.export import Destination
from notif_export.lib.source import SourceDatabase


_VALIDATORS = {
    "bucket": settings.validate_bucket,
    "prefix": settings.validate_prefix,
    "layout": settings.validate_layout,
    "compression": settings.validate_compression,
    "sse": settings.validate_sse,
    "storage_class": settings.validate_storage_class,
}


class SourceResource(dg.ConfigurableResource):
    """The notification log database (`NOTIF_EXPORT_SOURCE_URL`)."""

    url: str

    def open(self) -> SourceDatabase:
        return SourceDatabase(self.url)


class S3ConnectionResource(dg.ConfigurableResource):
    """How to reach the bucket. Keys, token and External ID are environment references
    (`dg.EnvVar`), so their values never reach the UI or the run's config."""

    region: str = settings.DEFAULT_REGION
    endpoint_url: str | None = None
    sts_endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    def access(self) -> BucketAccess:
        # The fields are BucketAccess's own, resolved from their environment references here.
        return BucketAccess(**{name: getattr(self, name) for name in type(self).model_fields})


class DestinationResource(dg.ConfigurableResource):
    """Where and how the files are written: bucket, key prefix, layout, compression, encryption
    and storage class, over an S3 connection."""

    connection: S3ConnectionResource
    bucket: str
    prefix: str = ""
    layout: str = "shared"
    compression: str = "snappy"
    sse: str = "AES256"
    kms_key_id: str | None = None
    storage_class: str = "STANDARD"

    @field_validator(*_VALIDATORS)
    @classmethod
    def _validate(cls, value: str, info: ValidationInfo) -> str:
        # The same checks as the environment settings, so a launchpad edit is refused the same way.
        return _VALIDATORS[info.field_name](value)

    @property
    def destination(self) -> Destination:
        return Destination(
            bucket=self.bucket, prefix=self.prefix, layout=self.layout, compression=self.compression,
            sse=self.sse, kms_key_id=self.kms_key_id, storage_class=self.storage_class,
        )

    def client(self) -> Any:
        return self.connection.access().s3_client()

    def credentials(self) -> Any:
        """botocore credentials (refreshing themselves for an assumed role)."""
        return self.connection.access().session().get_credentials()


def _secret(env: dict[str, str], var: str) -> dg.EnvVar | None:
    return dg.EnvVar(var) if env.get(var) else None


def build_resources(config: settings.Settings, env: dict[str, str]) -> dict[str, Any]:
    # A database URL with a password is passed by reference too.
    has_password = make_url(config.source_url).password is not None
    return {
        "source": SourceResource(url=dg.EnvVar("NOTIF_EXPORT_SOURCE_URL") if has_password else config.source_url),
        "destination": DestinationResource(
            connection=S3ConnectionResource(
                region=config.region,
                endpoint_url=config.endpoint_url,
                sts_endpoint_url=config.sts_endpoint_url,
                access_key_id=_secret(env, "AWS_ACCESS_KEY_ID"),
                secret_access_key=_secret(env, "AWS_SECRET_ACCESS_KEY"),
                session_token=_secret(env, "AWS_SESSION_TOKEN"),
                role_arn=config.role_arn,
                external_id=_secret(env, "NOTIF_EXPORT_EXTERNAL_ID"),
            ),
            bucket=config.bucket,
            prefix=config.prefix,
            layout=config.layout,
            compression=config.compression,
            sse=config.sse,
            kms_key_id=config.kms_key_id,
            storage_class=config.storage_class,
        ),
    }
