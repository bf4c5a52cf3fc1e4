"""Access to the bucket: credentials, the S3 client, and how every object is written.

Credentials come from, in this order: an IAM role assumed with its External ID (the
recommended setup; the temporary credentials refresh themselves before they expire, also in
runs that last hours), an access key pair, or the standard AWS chain (profile, instance role).
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from pydantic import BaseModel, ConfigDict, Field

ROLE_SESSION_NAME = "notif-export"
ROLE_DURATION_SECONDS = 3600


# The secrets and the environment variables that hold them: only references to these variables
# reach Dagster (`dg.EnvVar`), never their values.
SECRET_VARIABLES = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "external_id": "NOTIF_EXPORT_EXTERNAL_ID",
}


class BucketAccess(BaseModel):
    """How to reach the bucket. The fields are named as dagster-aws's `S3Resource` names them
    (the Dagster resource is both); `Settings` validates their values."""

    model_config = ConfigDict(frozen=True)

    region_name: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_session_token: str | None = Field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = Field(default=None, repr=False)
    sts_endpoint_url: str | None = None
    role_duration_seconds: int = ROLE_DURATION_SECONDS
    max_attempts: int = 5

    def base_session(self) -> boto3.Session:
        """The caller's own identity: the key pair, or the standard chain when none is set."""
        return boto3.Session(
            aws_access_key_id=self.aws_access_key_id or None,
            aws_secret_access_key=self.aws_secret_access_key or None,
            aws_session_token=self.aws_session_token or None,
            region_name=self.region_name,
        )

    def sts_client(self, session: boto3.Session | None = None) -> Any:
        return (session or self.base_session()).client(
            "sts", endpoint_url=self.sts_endpoint_url, region_name=self.region_name
        )

    def assume_role(self) -> dict[str, str]:
        """One AssumeRole call with the External ID, in botocore's refresh format."""
        response = self.sts_client().assume_role(
            RoleArn=self.role_arn,
            RoleSessionName=ROLE_SESSION_NAME,
            ExternalId=self.external_id,
            DurationSeconds=self.role_duration_seconds,
        )["Credentials"]
        expiry: datetime = response["Expiration"]
        return {
            "access_key": response["AccessKeyId"],
            "secret_key": response["SecretAccessKey"],
            "token": response["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    def session(self) -> boto3.Session:
        return _session(self)

    def s3_client(self) -> Any:
        return _s3_client(self)


@functools.lru_cache(maxsize=8)
def _session(access: BucketAccess) -> boto3.Session:
    # One session per setting, shared by a run's threads: an assumed role's credentials are
    # fetched once and refreshed by botocore ahead of their expiry (15 minutes before, or 10 at
    # the latest), not per file.
    if not access.role_arn:
        return access.base_session()
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=access.assume_role(), refresh_using=access.assume_role, method="sts-assume-role"
    )
    core = botocore.session.Session()
    # botocore has no public setter for a session's credentials; this is the usual way.
    core._credentials = credentials
    return boto3.Session(botocore_session=core, region_name=access.region_name)


@functools.lru_cache(maxsize=8)
def _s3_client(access: BucketAccess) -> Any:
    options: dict[str, Any] = {"retries": {"max_attempts": access.max_attempts, "mode": "standard"}}
    if access.endpoint_url:
        options["s3"] = {"addressing_style": "path"}  # local and compatible servers
    return access.session().client(
        "s3", region_name=access.region_name, endpoint_url=access.endpoint_url, config=Config(**options)
    )


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
