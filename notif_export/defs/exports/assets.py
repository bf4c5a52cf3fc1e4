"""One hourly-partitioned asset per data point: materializing an hour rewrites its Parquet file."""

import dagster as dg

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.defs.shared.rewrite_hours import hour_metadata, rewrite_hours
from notif_export.lib.contract import DATA_POINTS, DataPoint

EXPORT_GROUP = "exports"


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
        hours = [partitions_def.time_window_for_partition_key(key).start for key in context.partition_keys]
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
