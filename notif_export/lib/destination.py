"""Where and how the files are written: bucket, key prefix, encryption and storage class, which
every destination shares (`BucketTarget`), and the Parquet files' layout and compression
(`Destination`; the JSON objects' is `json_objects.JsonDestination`). Each field is declared,
defaulted and validated here once; `Settings` reads them from the environment and the Dagster
resource inherits them (so a launchpad edit is refused the same way as a bad environment
variable)."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from notif_export.lib.hours import hour_start

LAYOUTS = ("shared", "per_type")
COMPRESSIONS = ("snappy", "lz4", "gzip", "zstd", "brotli", "none")
SSE_MODES = {"AES256": "AES256", "SSE-S3": "AES256", "aws:kms": "aws:kms", "SSE-KMS": "aws:kms"}
# Parquet files are read in place by the analytics, so no class that needs a restore first.
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
DEFAULT_BUCKET = "notif-export"

# The environment variable of each field, named in error messages and read by `Settings`.
VARIABLES = {
    "bucket": "NOTIF_EXPORT_BUCKET",
    "prefix": "NOTIF_EXPORT_PREFIX",
    "layout": "NOTIF_EXPORT_LAYOUT",
    "compression": "NOTIF_EXPORT_COMPRESSION",
    "sse": "NOTIF_EXPORT_SSE",
    "kms_key_id": "NOTIF_EXPORT_KMS_KEY_ID",
    "storage_class": "NOTIF_EXPORT_STORAGE_CLASS",
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class BucketTarget(BaseModel):
    """What every destination shares: the bucket, the key prefix, the encryption and storage
    class of every write. Each destination names its own variables (`VARIABLES`, in the
    messages) and the storage classes it accepts."""

    model_config = ConfigDict(frozen=True)

    VARIABLES: ClassVar[dict[str, str]] = VARIABLES
    STORAGE_CLASSES: ClassVar[tuple[str, ...]] = STORAGE_CLASSES

    bucket: str = DEFAULT_BUCKET
    prefix: str = ""
    sse: str = "AES256"  # every object is encrypted: SSE-S3, or SSE-KMS with kms_key_id
    kms_key_id: str | None = Field(default=None, validate_default=True)  # required with aws:kms
    storage_class: str = "STANDARD"

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        problem = None
        if not _BUCKET_RE.match(value):
            problem = ("3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending "
                       "with a letter or digit")
        elif ".." in value or ".-" in value or "-." in value:
            problem = "no two adjacent dots, and no dot next to a hyphen"
        elif _is_ip_address(value):
            problem = "not formatted as an IP address"
        if problem:
            raise ValueError(f"{cls.VARIABLES['bucket']}={value!r} is not a valid S3 bucket name: it must be {problem}")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("/") or "//" in value:
            raise ValueError(f"{cls.VARIABLES['prefix']}={value!r}: a key prefix must not start with '/' or "
                             "contain '//' (e.g. 'suprsend/exports/')")
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str) -> str:
        return _one_of(cls.VARIABLES["storage_class"], value, value.upper(), cls.STORAGE_CLASSES, "is not supported")

    @field_validator("sse")
    @classmethod
    def _sse(cls, value: str) -> str:
        mode = SSE_MODES.get(value) or SSE_MODES.get(value.upper())
        if not mode:
            raise ValueError(f"NOTIF_EXPORT_SSE={value!r} is not an encryption mode; use AES256 (SSE-S3, the "
                             "default) or aws:kms (SSE-KMS, with NOTIF_EXPORT_KMS_KEY_ID)")
        return mode

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key_id(cls, value: str | None, info) -> str | None:
        if info.data.get("sse") == "aws:kms" and not value:
            raise ValueError("NOTIF_EXPORT_SSE=aws:kms needs NOTIF_EXPORT_KMS_KEY_ID: the KMS key's id, ARN or alias")
        return value or None

    def put_args(self, metadata: dict[str, str]) -> dict[str, Any]:
        """The arguments of every write (PutObject, CreateMultipartUpload, CopyObject)."""
        args: dict[str, Any] = {"ServerSideEncryption": self.sse, "StorageClass": self.storage_class,
                                "Metadata": metadata}
        if self.sse == "aws:kms":
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


class Destination(BucketTarget):
    """The hourly Parquet files. One value, passed around: several destinations can coexist."""

    layout: str = "shared"
    compression: str = "snappy"

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        return _one_of("NOTIF_EXPORT_LAYOUT", value, value, LAYOUTS, "is not a layout")

    @field_validator("compression")
    @classmethod
    def _compression(cls, value: str) -> str:
        return _one_of("NOTIF_EXPORT_COMPRESSION", value, value.lower(), COMPRESSIONS, "is not supported")

    def object_key(self, data_point: str, hour: datetime) -> str:
        start = hour_start(hour)
        return self._key(data_point, f"year={start:%Y}", f"month={start:%m}", f"day={start:%d}", f"hour={start:%H}")

    def files_glob(self, data_point: str) -> str:
        """Every hour's file of a data point, as a glob URI (DuckDB, dbt sources)."""
        return self.uri(self._key(data_point, "year=*", "month=*", "day=*", "hour=*"))

    def _key(self, data_point: str, *partition: str) -> str:
        folder = "/".join(partition)
        folder = f"{data_point}/{folder}" if self.layout == "per_type" else folder
        return f"{self.prefix}{folder}/{data_point}.parquet"


def _one_of(variable: str, given: str, value: str, allowed: tuple[str, ...], problem: str) -> str:
    if value not in allowed:
        raise ValueError(f"{variable}={given!r} {problem}; use one of: {', '.join(allowed)}")
    return value


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
