"""Bucket access against moto's server (STS, IAM, KMS and S3 in one process of its own):
the role assumed with its External ID and refreshed, SSE-KMS, a delete the policy denies."""

import json
import urllib.request
from datetime import timedelta

import pytest

from notif_export.dev.simulator import Simulator
from notif_export.lib.bucket_access import BucketAccess
from notif_export.lib.contract import MESSAGES
from notif_export.lib.destination import Destination
from notif_export.lib.export import rewrite_hour
from notif_export_tests.conftest import NOW, MotoServer, moto_with_user

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"sts:ExternalId": "suprsend-ext-42"}}}]}


def make_role(moto, name: str) -> str:
    return moto.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]


def test_the_role_is_assumed_with_the_external_id_and_refreshed_before_expiry(moto):
    role = make_role(moto, "exporter-refresh")
    moto.client("s3").create_bucket(Bucket="role-bucket")
    access = BucketAccess(region_name="us-east-1", endpoint_url=moto.url, sts_endpoint_url=moto.url,
                          **MotoServer.ADMIN,
                          role_arn=role, external_id="suprsend-ext-42",
                          # 15 minutes: inside botocore's refresh window from the start, so every
                          # use refreshes, as a long run does when its hour comes up
                          role_duration_seconds=900)
    credentials = access.session().get_credentials()
    first = credentials.get_frozen_credentials()
    assert first.access_key.startswith("ASIA") and first.token  # temporary, from STS
    s3 = access.s3_client()
    s3.put_object(Bucket="role-bucket", Key="a", Body=b"1")
    second = credentials.get_frozen_credentials()
    assert second.access_key != first.access_key  # refreshed by a new AssumeRole
    s3.put_object(Bucket="role-bucket", Key="b", Body=b"2")  # the same client goes on working
    assert s3.get_object(Bucket="role-bucket", Key="b")["Body"].read() == b"2"
    # what STS received (moto's record of every AssumeRole): the role and the External ID, each time
    assumed = [a for a in json.loads(urllib.request.urlopen(moto.url + "/moto-api/data.json").read())["sts"]
               ["AssumedRole"] if a["role_arn"] == role]
    assert len(assumed) >= 2
    assert {(a["external_id"], a["session_name"]) for a in assumed} == {("suprsend-ext-42", "notif-export")}


def test_sse_kms_objects_carry_the_key(moto, tmp_path):
    from notif_export.lib.source import SourceDatabase

    db = SourceDatabase(f"sqlite:///{tmp_path / 'source.db'}")
    db.init_schema()
    Simulator(db, seed=3).history(1, NOW)
    key_id = moto.client("kms").create_key(Description="notif-export")["KeyMetadata"]["KeyId"]
    moto.client("s3").create_bucket(Bucket="kms-bucket")
    s3 = moto.client("s3")
    dest = Destination(bucket="kms-bucket", sse="aws:kms", kms_key_id=key_id, storage_class="STANDARD_IA")
    result = rewrite_hour(db, s3, dest, MESSAGES, NOW, run_id="run-1")
    head = s3.head_object(Bucket="kms-bucket", Key=dest.object_key("messages", NOW))
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(key_id)
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["Metadata"]["row-count"] == str(result.rows)


@pytest.fixture
def exporter_without_delete():
    moto, credentials = moto_with_user(["s3:PutObject", "s3:GetObject", "s3:ListBucket"], "policy-bucket")
    yield moto, credentials
    moto.stop()


def test_an_emptied_hour_whose_delete_is_denied_is_left_with_a_warning(exporter_without_delete, tmp_path):
    from notif_export.lib.source import SourceDatabase

    moto, credentials = exporter_without_delete
    s3 = moto.client("s3", **credentials)
    db = SourceDatabase(f"sqlite:///{tmp_path / 'source.db'}")
    db.init_schema()
    dest = Destination(bucket="policy-bucket")
    empty_hour = NOW - timedelta(hours=30)
    key = dest.object_key("messages", empty_hour)
    s3.put_object(Bucket="policy-bucket", Key=key, Body=b"an hour whose rows are gone")
    result = rewrite_hour(db, s3, dest, MESSAGES, empty_hour)
    assert result.rows == 0
    assert "does not allow s3:DeleteObject" in result.warning and key in result.warning
    assert s3.get_object(Bucket="policy-bucket", Key=key)["Body"].read() == b"an hour whose rows are gone"
