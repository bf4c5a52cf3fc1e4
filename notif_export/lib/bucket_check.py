"""The setup checklist for the bucket, item by item: what passed, and what to fix.

Used by `notif-export check` and the Dagster job `check_bucket_access`. It writes, reads, lists
and deletes one small probe object under the prefix, with the export's own encryption and
storage class, so each permission is tried for real.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.destination import Destination

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
_BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                    "ExpiredToken", "InvalidToken", "UnrecognizedClientException")
_UNSUPPORTED = ("NotImplemented", "MethodNotAllowed", "501")


@dataclass(frozen=True)
class CheckItem:
    name: str
    status: str
    detail: str = ""
    fix: str = ""

    def render(self) -> str:
        line = f"{self.status:<5} {self.name}" + (f": {self.detail}" if self.detail else "")
        return line + (f"\n      fix: {self.fix}" if self.fix else "")


def failed(items: list[CheckItem]) -> bool:
    return any(item.status == FAIL for item in items)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def _message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc)


def check_bucket(access: BucketAccess, destination: Destination) -> list[CheckItem]:
    """The checklist in order; it stops at a failure that leaves nothing further to try."""
    return list(_checks(access, destination))


def _checks(access: BucketAccess, destination: Destination) -> Iterator[CheckItem]:
    bucket = destination.bucket
    if access.base_session().get_credentials() is None:
        yield CheckItem("credentials found", FAIL, "no AWS credentials were found",
                        "set NOTIF_EXPORT_ROLE_ARN with NOTIF_EXPORT_EXTERNAL_ID, or AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or an AWS profile or instance role")
        return
    yield CheckItem("credentials found", PASS,
                    "access key" if access.aws_access_key_id else "the standard AWS credential chain")

    if access.role_arn:
        try:
            access.assume_role()
            yield CheckItem("role assumed with the External ID", PASS, access.role_arn)
        except (ClientError, BotoCoreError) as exc:
            yield CheckItem(
                "role assumed with the External ID", FAIL, f"{access.role_arn}: {_message(exc)}",
                "the role's trust policy must allow this program's AWS principal to call sts:AssumeRole "
                "with the condition sts:ExternalId equal to NOTIF_EXPORT_EXTERNAL_ID; check both ARNs "
                "and the External ID",
            )
            return

    s3 = access.s3_client()
    if not access.endpoint_url or access.sts_endpoint_url:
        try:
            identity = access.sts_client(access.session()).get_caller_identity()
            yield CheckItem("credentials valid", PASS, identity["Arn"])
        except (ClientError, BotoCoreError) as exc:
            yield _credentials_failure(exc)
            return

    try:
        # A listing, not HEAD: its error body tells a wrong key from a wrong secret.
        listing = s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
        yield CheckItem("bucket exists", PASS, f"s3://{bucket}")
    except ClientError as exc:
        yield _bucket_failure(exc, bucket)
        return
    except BotoCoreError as exc:
        yield CheckItem("bucket exists", FAIL, f"the S3 endpoint could not be reached: {exc}",
                        "check AWS_ENDPOINT_URL (or leave it unset for AWS) and the network")
        return

    yield _region_item(s3, bucket, listing, access.region_name)
    yield from _permission_items(s3, destination)
    yield _public_access_item(s3, bucket)
    yield _default_encryption_item(s3, bucket)


def _credentials_failure(exc: Exception) -> CheckItem:
    code = _code(exc)
    fix = {
        "InvalidAccessKeyId": "AWS_ACCESS_KEY_ID is not a key this account (or server) knows: fix it",
        "InvalidClientTokenId": "AWS_ACCESS_KEY_ID is not a key this account knows: fix it",
        "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY does not belong to AWS_ACCESS_KEY_ID: fix the secret",
        "ExpiredToken": "the session token expired: renew AWS_SESSION_TOKEN, or use a role (NOTIF_EXPORT_ROLE_ARN)",
    }.get(code, "fix AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN")
    return CheckItem("credentials valid", FAIL, _message(exc), fix)


def _bucket_failure(exc: ClientError, bucket: str) -> CheckItem:
    code = _code(exc)
    if code in _BAD_CREDENTIALS:
        return _credentials_failure(exc)
    if code in ("404", "NoSuchBucket"):
        return CheckItem("bucket exists", FAIL, f"there is no bucket named {bucket!r}",
                         "create it first, or fix NOTIF_EXPORT_BUCKET (bucket names are case-sensitive "
                         "and lowercase)")
    if code in ("403", "AccessDenied"):
        return CheckItem("bucket exists", FAIL, f"listing {bucket!r} was denied",
                         f"allow s3:ListBucket on arn:aws:s3:::{bucket} to these credentials")
    if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed"):
        return CheckItem("bucket exists", FAIL, f"{bucket!r} is in another region",
                         "set AWS_REGION to the bucket's region")
    return CheckItem("bucket exists", FAIL, _message(exc), "check NOTIF_EXPORT_BUCKET and AWS_ENDPOINT_URL")


def _region_item(s3: Any, bucket: str, listing: dict, region: str) -> CheckItem:
    def header(response: dict) -> str | None:
        return response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")

    actual = header(listing)
    for ask in (lambda: header(s3.head_bucket(Bucket=bucket)),
                lambda: s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"):
        if actual:
            break
        try:
            actual = ask()
        except ClientError:
            continue
    if not actual:
        return CheckItem("region matches", SKIP, "the bucket's region could not be read (s3:GetBucketLocation)")
    if actual != region:
        return CheckItem("region matches", FAIL, f"the bucket is in {actual}, AWS_REGION is {region}",
                         f"set AWS_REGION={actual}")
    return CheckItem("region matches", PASS, actual)


def _permission_items(s3: Any, destination: Destination) -> Iterator[CheckItem]:
    bucket = destination.bucket
    key = f"{destination.prefix}_notif_export_check/{uuid.uuid4().hex}.txt"
    body = b"notif-export connection check; safe to delete\n"
    resource = f"arn:aws:s3:::{bucket}/{destination.prefix}*"

    def attempt(name: str, action: Callable[[], Any], fix: str, ok: str = "") -> tuple[CheckItem, Any]:
        try:
            return CheckItem(name, PASS, ok), action()
        except ClientError as exc:
            hint = fix
            if "KMS" in _code(exc) or "kms" in _message(exc).lower():
                hint = (f"the KMS key {destination.kms_key_id} must allow kms:GenerateDataKey and "
                        "kms:Decrypt to these credentials")
            return CheckItem(name, FAIL, _message(exc), hint), None

    put, _ = attempt("s3:PutObject", lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=body, **destination.put_args({"purpose": "notif-export-check"})),
        f"allow s3:PutObject on {resource}", ok=f"s3://{bucket}/{key}")
    yield put
    if put.status != PASS:
        return
    got, response = attempt("s3:GetObject", lambda: s3.get_object(Bucket=bucket, Key=key),
                            f"allow s3:GetObject on {resource}")
    if got.status == PASS and response["Body"].read() != body:
        got = CheckItem("s3:GetObject", FAIL, "the probe object read back differs from what was written",
                        "check for a proxy or gateway rewriting objects")
    yield got
    listed, response = attempt("s3:ListBucket", lambda: s3.list_objects_v2(Bucket=bucket, Prefix=key),
                               f"allow s3:ListBucket on arn:aws:s3:::{bucket}")
    if listed.status == PASS and not any(o["Key"] == key for o in response.get("Contents", [])):
        listed = CheckItem("s3:ListBucket", FAIL, "the probe object is missing from the listing",
                           "check the bucket's consistency settings")
    yield listed
    if got.status == PASS:
        sse = s3.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption")
        yield (CheckItem("objects encrypted", PASS, f"{sse} on every write") if sse == destination.sse
               else CheckItem("objects encrypted", FAIL,
                              f"the probe object reports encryption {sse!r}, not {destination.sse!r}",
                              "use a server that applies SSE headers, or change NOTIF_EXPORT_SSE"))
    try:
        s3.delete_object(Bucket=bucket, Key=key)
        yield CheckItem("s3:DeleteObject (optional)", PASS, "probe removed")
    except ClientError as exc:
        yield CheckItem("s3:DeleteObject (optional)", WARN, _message(exc),
                        f"not needed: emptied hours' files are then left in place with a warning; "
                        f"delete s3://{bucket}/{key} by hand")


def _public_access_item(s3: Any, bucket: str) -> CheckItem:
    name = "public access blocked"
    try:
        config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        code = _code(exc)
        if code == "NoSuchPublicAccessBlockConfiguration":
            return CheckItem(name, FAIL, "the bucket has no Block Public Access configuration",
                             "turn on all four Block Public Access settings for the bucket")
        if code in _UNSUPPORTED:
            return CheckItem(name, SKIP, "this S3 server does not support Block Public Access")
        return CheckItem(name, WARN, f"could not be read ({_message(exc)})",
                         "check it in the console, or allow s3:GetBucketPublicAccessBlock to verify")
    off = [k for k, v in config.items() if not v]
    if off:
        return CheckItem(name, FAIL, f"not blocked: {', '.join(off)}", "turn these Block Public Access settings on")
    return CheckItem(name, PASS, "all four settings on")


def _default_encryption_item(s3: Any, bucket: str) -> CheckItem:
    name = "default encryption"
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        code = _code(exc)
        if code == "ServerSideEncryptionConfigurationNotFoundError":
            return CheckItem(name, WARN, "the bucket has no default encryption (notif_export still "
                             "encrypts each object it writes)", "set SSE-S3 or SSE-KMS as the bucket's default")
        if code in _UNSUPPORTED:
            return CheckItem(name, SKIP, "this S3 server does not report default encryption")
        return CheckItem(name, WARN, f"could not be read ({_message(exc)})",
                         "check it in the console, or allow s3:GetEncryptionConfiguration to verify")
    algorithms = [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules
                  if "ApplyServerSideEncryptionByDefault" in r]
    return CheckItem(name, PASS, ", ".join(algorithms) or "configured")
