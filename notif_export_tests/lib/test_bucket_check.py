"""The setup checklist against the real local S3 server, and moto's server for what only AWS has
(regions, Block Public Access, default encryption, STS, IAM policies)."""

import pytest

from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.bucket_check import FAIL, PASS, SKIP, WARN, check_bucket, failed
from notif_export.lib.destination import Destination
from notif_export_tests.conftest import MotoServer, list_keys, moto_with_user


def results(items) -> dict[str, tuple[str, str, str]]:
    return {i.name: (i.status, i.detail, i.fix) for i in items}


def local_access(s3_server, **overrides) -> BucketAccess:
    creds = s3_server.credentials()
    values = {"region_name": "us-east-1", "endpoint_url": s3_server.endpoint_url,
              "aws_access_key_id": creds["access_key"], "aws_secret_access_key": creds["secret_key"], **overrides}
    return BucketAccess(**values)


def test_a_good_setup_passes_and_leaves_nothing_behind(s3_server, s3, bucket):
    items = check_bucket(local_access(s3_server), Destination(bucket=bucket, prefix="suprsend/"))
    status = {name: r[0] for name, r in results(items).items()}
    assert status == {
        "credentials found": PASS, "bucket exists": PASS, "region matches": PASS, "s3:PutObject": PASS,
        "s3:GetObject": PASS, "s3:ListBucket": PASS, "objects encrypted": PASS,
        "s3:DeleteObject (optional)": PASS,
        "public access blocked": SKIP,  # SeaweedFS has no Block Public Access
        "default encryption": WARN,
    }
    assert not failed(items)
    assert list_keys(s3, bucket) == []
    print("\n".join(i.render() for i in items))


@pytest.mark.parametrize("override, says", [
    ({"aws_access_key_id": "AKIAWRONGWRONGWRONG0"}, "AWS_ACCESS_KEY_ID is not a key"),
    ({"aws_secret_access_key": "not-the-secret"}, "AWS_SECRET_ACCESS_KEY does not belong to AWS_ACCESS_KEY_ID"),
])
def test_wrong_credentials_are_named(s3_server, bucket, override, says):
    items = check_bucket(local_access(s3_server, **override), Destination(bucket=bucket))
    assert items[-1].name == "credentials valid" and items[-1].status == FAIL  # and the list stops there
    assert says in items[-1].fix
    assert "not-the-secret" not in "".join(i.render() for i in items)


def test_a_missing_bucket_is_named_with_the_case_rule(s3_server, bucket):
    items = check_bucket(local_access(s3_server), Destination(bucket=bucket + "-missing"))
    status, detail, fix = results(items)["bucket exists"]
    assert status == FAIL and f"no bucket named '{bucket}-missing'" in detail and "case-sensitive" in fix
    assert failed(items)


def moto_access(moto, region: str = "us-east-1") -> BucketAccess:
    return BucketAccess(region_name=region, endpoint_url=moto.url, sts_endpoint_url=moto.url, **MotoServer.ADMIN)


def test_region_public_access_and_default_encryption_on_aws_apis(moto):
    s3 = moto.client("s3", region="eu-west-1")
    s3.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    found = results(check_bucket(moto_access(moto), Destination(bucket="eu-bucket")))
    assert found["credentials valid"][0] == PASS and "arn:aws" in found["credentials valid"][1]
    assert found["region matches"] == (FAIL, "the bucket is in eu-west-1, AWS_REGION is us-east-1",
                                       "set AWS_REGION=eu-west-1")
    assert found["public access blocked"][0] == FAIL and "Block Public Access" in found["public access blocked"][2]
    assert found["default encryption"][0] == WARN

    s3.put_public_access_block(Bucket="eu-bucket", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket="eu-bucket", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    items = check_bucket(moto_access(moto, region="eu-west-1"), Destination(bucket="eu-bucket"))
    assert not failed(items)
    found = results(items)
    assert found["public access blocked"][0] == PASS and found["default encryption"] == (PASS, "aws:kms", "")


@pytest.fixture
def restricted():
    """A user that may read and list but not write, nor assume the role."""
    moto, credentials = moto_with_user(["s3:GetObject", "s3:ListBucket", "sts:GetCallerIdentity"], "locked-bucket")
    yield moto, credentials
    moto.stop()


def test_a_denied_permission_and_an_unassumable_role_say_what_to_allow(restricted):
    moto, credentials = restricted
    access = BucketAccess(region_name="us-east-1", endpoint_url=moto.url, sts_endpoint_url=moto.url, **credentials)
    found = results(check_bucket(access, Destination(bucket="locked-bucket", prefix="exports/")))
    assert found["s3:PutObject"][0] == FAIL
    assert found["s3:PutObject"][2] == "allow s3:PutObject on arn:aws:s3:::locked-bucket/exports/*"
    assert "s3:GetObject" not in found  # nothing to read back

    role = "arn:aws:iam::123456789012:role/exporter"
    with_role = access.model_copy(update={"role_arn": role, "external_id": "suprsend-ext-42"})
    items = check_bucket(with_role, Destination(bucket="locked-bucket"))
    assert items[-1].name == "role assumed with the External ID" and items[-1].status == FAIL
    assert "sts:ExternalId" in items[-1].fix
    assert "suprsend-ext-42" not in "".join(i.render() for i in items)
