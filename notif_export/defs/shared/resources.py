"""The Dagster resources every area uses, built from `Settings` by `build_resources` alone.

The resources inherit their fields from the plain values they stand for (`Destination`,
`BucketAccess`), so a field is declared once and a launchpad edit is validated like the
environment. Secrets go in as environment references (`dg.EnvVar`): their values never reach
the UI, the run config or the events.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import Field
from sqlalchemy.engine import make_url

from notif_export.lib.bucket_access import SECRET_VARIABLES, BucketAccess
from notif_export.lib.destination import Destination
from notif_export.lib.json_objects import JsonDestination
from notif_export.lib.settings import Settings
from notif_export.lib.source import SourceDatabase


class SourceResource(dg.ConfigurableResource):
    """The notification log database (`NOTIF_EXPORT_SOURCE_URL`), and how many hours a run
    exports from it at once, each in its own process (`NOTIF_EXPORT_EXPORT_PROCESSES`)."""

    url: str
    export_processes: int = Field(default=1, ge=1)

    def open(self) -> SourceDatabase:
        return SourceDatabase(self.url)


class S3ConnectionResource(S3Resource, BucketAccess):
    """dagster-aws's `S3Resource`, configured as dagster-aws documents (`region_name`,
    `endpoint_url`, `aws_access_key_id`, ...), plus an IAM role assumed with its External ID
    whose temporary credentials refresh themselves in long runs (`role_arn`, `external_id`,
    `sts_endpoint_url`)."""

    def access(self) -> BucketAccess:
        # A plain value (hashable): its session and client are cached and shared by a run's threads.
        return BucketAccess(**self.model_dump(include=set(BucketAccess.model_fields)))

    def get_client(self) -> Any:
        return self.access().s3_client()

    def credentials(self) -> Any:
        """botocore credentials (refreshing themselves for an assumed role)."""
        return self.access().session().get_credentials()


class DestinationResource(dg.ConfigurableResource, Destination):
    """Where and how the files are written (bucket, prefix, layout, compression, encryption,
    storage class), over an S3 connection."""

    connection: S3ConnectionResource

    @property
    def destination(self) -> Destination:
        return Destination(**self.model_dump(include=set(Destination.model_fields)))


class JsonDestinationResource(dg.ConfigurableResource, JsonDestination):
    """Where and how the JSON objects are written (bucket, prefix, encryption, storage class,
    data points, key template), over the same S3 connection as the files."""

    connection: S3ConnectionResource

    @property
    def destination(self) -> JsonDestination:
        return JsonDestination(**self.model_dump(include=set(JsonDestination.model_fields)))


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    access = settings.bucket_access.model_dump()
    for name, variable in SECRET_VARIABLES.items():
        access[name] = dg.EnvVar(variable) if access[name] else None
    # A database URL with a password is passed by reference too.
    has_password = make_url(settings.source_url).password is not None
    connection = S3ConnectionResource(**access)
    return {
        "source": SourceResource(url=dg.EnvVar("NOTIF_EXPORT_SOURCE_URL") if has_password else settings.source_url,
                                 export_processes=settings.export_processes),
        "destination": DestinationResource(connection=connection, **settings.destination.model_dump()),
        "json_destination": JsonDestinationResource(connection=connection, **settings.json_destination.model_dump()),
        # DuckDB reads the bucket for the reconciliation (an in-memory database per use).
        "duckdb": DuckDBResource(database=":memory:"),
    }
