"""One hourly-partitioned asset per data point: materializing an hour rewrites its Parquet file."""


from collections.abc import Iterable

import dagster as dg

from notif_export.defs.exports.partitions import partition_hour
from notif_export.defs.exports.resources import DestinationResource, SourceResource
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.export import HourExport, rewrite_hour

EXPORT_GROUP = "exports"


def hour_metadata(result: HourExport) -> dict[str, dg.MetadataValue]:
    return {
        "rows": dg.MetadataValue.int(result.rows),
        "bytes": dg.MetadataValue.int(result.bytes),
        "s3_uri": dg.MetadataValue.path(result.uri),
        "max_updated_at": dg.MetadataValue.text(
            result.max_updated_at.isoformat() if result.max_updated_at else ""
        ),
    }


def rewrite_hours(
    log: dg.DagsterLogManager,
    dp: DataPoint,
    hours: Iterable,
    source: SourceResource,
    destination: DestinationResource,
    run_id: str,
) -> list[HourExport]:
    """Rewrite each hour's file in turn, sharing one database and one S3 client."""
    db = source.open()
    db.check_schema()
    s3 = destination.client()
    results = []
    try:
        for hour in hours:
            result = rewrite_hour(db, s3, destination.destination, dp, hour, run_id=run_id)
            log.info(
                f"{dp.name} {hour:%Y-%m-%d %H}:00: "
                + (f"{result.rows} rows, {result.bytes} bytes -> {result.uri}" if result.written
                   else f"no rows, {result.uri} removed")
            )
            if result.warning:
                log.warning(result.warning)
            results.append(result)
    finally:
        db.dispose()
    return results


def build_export_asset(dp: DataPoint, partitions_def: dg.HourlyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=dp.name,
        group_name=EXPORT_GROUP,
        partitions_def=partitions_def,
        # A backfill of many hours is one run (runs cost seconds to start); each hour is still
        # written to its own file.
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"s3", "parquet"},
        description=f"`{dp.name}` rows created in the hour, latest state, as "
        f"`.../year=YYYY/month=MM/day=DD/hour=HH/{dp.name}.parquet`.",
    )
    def export_asset(
        context: dg.AssetExecutionContext, source: SourceResource, destination: DestinationResource
    ) -> dg.MaterializeResult:
        hours = [partition_hour(partitions_def, key) for key in context.partition_keys]
        results = rewrite_hours(context.log, dp, hours, source, destination, context.run.run_id)
        if len(results) == 1:
            return dg.MaterializeResult(metadata=hour_metadata(results[0]))
        return dg.MaterializeResult(
            metadata={
                "hours": dg.MetadataValue.int(len(results)),
                "rows": dg.MetadataValue.int(sum(r.rows for r in results)),
                "bytes": dg.MetadataValue.int(sum(r.bytes for r in results)),
                "files": dg.MetadataValue.md(
                    "| hour | rows | bytes | file |\n|---|---|---|---|\n"
                    + "\n".join(f"| {r.hour:%Y-%m-%d %H}:00 | {r.rows} | {r.bytes} | {r.uri if r.written else '(none)'} |"
                                for r in results)
                ),
            }
        )

    return export_asset


def build_export_assets(partitions_def: dg.HourlyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [build_export_asset(dp, partitions_def) for dp in DATA_POINTS.values()]
