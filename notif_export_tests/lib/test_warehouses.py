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
    # 64-bit integer partition columns, projected from zero-padded keys (`month=01`, `year=2026`).
    assert "PARTITIONED BY (`year` bigint, `month` bigint, `day` bigint, `hour` bigint)" in ddl
    assert "'projection.hour.range'='0,23'" in ddl and "'projection.month.digits'='2'" in ddl
    assert "'projection.year.type'='integer'" in ddl and "'projection.year.digits'='4'" in ddl
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
    assert ddl.count("CREATE OR REPLACE EXTERNAL TABLE") == 3
    # One data point's files only, though the shared layout puts all three in each hour's folder.
    assert "uris = ['s3://acme-logs/*/workflow_executions.parquet']" in ddl
    assert "hive_partition_uri_prefix = 's3://acme-logs/'" in ddl
    assert ddl.count("WITH PARTITION COLUMNS (year INT64, month INT64, day INT64, hour INT64)") == 3
    assert "WITH CONNECTION `aws-us-east-1.s3`" in ddl
    with pytest.raises(WarehouseError, match="--connection"):
        external_tables_ddl("bigquery", Destination(bucket="acme-logs"), "raw")
