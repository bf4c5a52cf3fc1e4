"""External table DDL for the warehouse targets, generated from the contract."""

import pytest

from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.destination import Destination
from notif_export.lib.warehouses import WarehouseError, external_tables_ddl


def test_athena_tables_project_their_partitions_over_per_type_folders():
    ddl = external_tables_ddl("athena", Destination(bucket="acme-logs", prefix="suprsend/", layout="per_type"), "raw")
    assert ddl.count("CREATE EXTERNAL TABLE") == 3
    assert "LOCATION 's3://acme-logs/suprsend/messages/'" in ddl
    assert ("'storage.location.template'='s3://acme-logs/suprsend/messages/"
            "year=${year}/month=${month}/day=${day}/hour=${hour}/'") in ddl
    assert "'projection.hour.range'='0,23'" in ddl and "'projection.month.digits'='2'" in ddl
    assert "`errors` array<struct<error_code:string,error_description:string,error_type:string,severity:string," \
           "workflow_slug:string>>" in ddl
    assert "`created_at` timestamp" in ddl
    for dp in DATA_POINTS.values():
        assert all(f"`{column}` " in ddl for column in dp.columns)


def test_athena_needs_the_per_type_layout():
    with pytest.raises(WarehouseError, match="NOTIF_EXPORT_LAYOUT=per_type"):
        external_tables_ddl("athena", Destination(bucket="acme-logs"), "raw")


def test_bigquery_tables_read_each_data_point_through_an_omni_connection():
    ddl = external_tables_ddl("bigquery", Destination(bucket="acme-logs"), "raw", connection="aws-us-east-1.s3")
    assert "uris = ['s3://acme-logs/*/workflow_executions.parquet']" in ddl
    assert "hive_partition_uri_prefix = 's3://acme-logs/'" in ddl
    assert "WITH CONNECTION `aws-us-east-1.s3`" in ddl
    with pytest.raises(WarehouseError, match="--connection"):
        external_tables_ddl("bigquery", Destination(bucket="acme-logs"), "raw")
