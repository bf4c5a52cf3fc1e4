"""External tables over the exported files for the warehouse targets of dbt_project/.

DuckDB reads the files directly. BigQuery (through a BigQuery Omni connection to the bucket's
AWS region) and Athena need a table per data point first; their DDL is generated here from the
contract, so the column types always match the files.
"""

from __future__ import annotations

import pyarrow as pa

from notif_export.lib.contract import (
    DATA_POINTS,
    PARTITION_COLUMN_TYPE,
    PARTITION_COLUMNS,
    DataPoint,
)
from notif_export.lib.destination import Destination

TARGETS = ("bigquery", "athena")
# The contract's partition column type, named as each warehouse names it (a KeyError here when the
# contract changes it).
ATHENA_PARTITION_TYPE = {"BIGINT": "bigint"}[PARTITION_COLUMN_TYPE]
BIGQUERY_PARTITION_TYPE = {"BIGINT": "INT64"}[PARTITION_COLUMN_TYPE]
# Each partition column's values and zero-padded width in the keys (`month=01`).
_PROJECTION_RANGES = {"year": ("2020,2099", 4), "month": ("1,12", 2), "day": ("1,31", 2), "hour": ("0,23", 2)}


class WarehouseError(ValueError):
    pass


def athena_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_list(arrow_type):
        return f"array<{athena_type(arrow_type.value_type)}>"
    if pa.types.is_struct(arrow_type):
        return "struct<" + ",".join(f"{f.name}:{athena_type(f.type)}" for f in arrow_type) + ">"
    return "string"


def athena_table(dp: DataPoint, destination: Destination, schema: str) -> str:
    """One table per data point, its partitions found by projection (no crawler, no MSCK)."""
    if destination.layout != "per_type":
        raise WarehouseError(
            "Athena reads every file under a table's location, so each data point needs its own folder: "
            "set NOTIF_EXPORT_LAYOUT=per_type (and export again) before creating Athena tables"
        )
    location = destination.uri(f"{destination.prefix}{dp.name}/")
    columns = ",\n".join(f"  `{f.name}` {athena_type(f.type)}" for f in dp.schema)
    projection = [("projection.enabled", "true")]
    for key in PARTITION_COLUMNS:
        value_range, digits = _PROJECTION_RANGES[key]
        projection += [(f"projection.{key}.type", "integer"), (f"projection.{key}.range", value_range),
                       (f"projection.{key}.digits", str(digits))]
    projection.append(("storage.location.template",
                       location + "/".join(f"{k}=${{{k}}}" for k in PARTITION_COLUMNS) + "/"))
    properties = ",\n".join(f"  '{k}'='{v}'" for k, v in projection)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{schema}`.`{dp.name}` (\n{columns}\n)\n"
        f"PARTITIONED BY ({', '.join(f'`{k}` {ATHENA_PARTITION_TYPE}' for k in PARTITION_COLUMNS)})\n"
        f"STORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES (\n{properties}\n);"
    )


def bigquery_table(dp: DataPoint, destination: Destination, schema: str, connection: str) -> str:
    """A BigLake table over one data point's files (`uris` end in its file name: the `shared` layout
    puts all three in the same hour folders); the schema is read from the files, the partition
    columns are declared, as BigQuery would otherwise infer their types."""
    if not connection:
        raise WarehouseError(
            "BigQuery reads S3 through a BigQuery Omni connection: pass --connection "
            "(e.g. aws-us-east-1.notif-export) created for the bucket's region"
        )
    root = f"{destination.prefix}{dp.name}/" if destination.layout == "per_type" else destination.prefix
    return (
        f"CREATE OR REPLACE EXTERNAL TABLE `{schema}.{dp.name}`\n"
        f"WITH PARTITION COLUMNS ({', '.join(f'{k} {BIGQUERY_PARTITION_TYPE}' for k in PARTITION_COLUMNS)})\n"
        f"WITH CONNECTION `{connection}`\n"
        f"OPTIONS (\n  format = 'PARQUET',\n"
        f"  uris = ['{destination.uri(root)}*/{dp.name}.parquet'],\n"
        f"  hive_partition_uri_prefix = '{destination.uri(root)}'\n);"
    )


def external_tables_ddl(target: str, destination: Destination, schema: str, connection: str = "") -> str:
    if target == "athena":
        statements = [f"CREATE DATABASE IF NOT EXISTS `{schema}`;"]
        statements += [athena_table(dp, destination, schema) for dp in DATA_POINTS.values()]
    elif target == "bigquery":
        statements = [f"CREATE SCHEMA IF NOT EXISTS `{schema}`;"]
        statements += [bigquery_table(dp, destination, schema, connection) for dp in DATA_POINTS.values()]
    else:
        raise WarehouseError(f"no external tables for target {target!r}; use one of: {', '.join(TARGETS)}")
    return "\n\n".join(statements)
