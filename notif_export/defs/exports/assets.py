"""One hourly-partitioned asset per data point: materializing an hour rewrites its Parquet file."""

import dagster as dg

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.defs.shared.retries import export_retry_policy, retried_if_transient
from notif_export.defs.shared.rewrite_hours import (
    hour_metadata,
    rewrite_hours,
    run_cutoff,
)
from notif_export.defs.shared.runs import SOURCE_POOL
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.settings import Settings

EXPORT_GROUP = "exports"


def build_export_asset(dp: DataPoint, partitions_def: dg.HourlyPartitionsDefinition,
                       retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    @dg.asset(
        name=dp.name,
        group_name=EXPORT_GROUP,
        partitions_def=partitions_def,
        # A backfill of many hours is one run (runs cost seconds to start); each hour is still
        # written to its own file.
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy,
        pool=SOURCE_POOL,
        kinds={"s3", "parquet"},
        description=f"`{dp.name}` rows created in the hour, latest state, as "
        f"`.../year=YYYY/month=MM/day=DD/hour=HH/{dp.name}.parquet`.",
    )
    def export_asset(
        context: dg.AssetExecutionContext, source: SourceResource, destination: DestinationResource
    ) -> dg.MaterializeResult:
        keys = context.partition_keys
        hours = [partitions_def.time_window_for_partition_key(key).start for key in keys]
        with retried_if_transient():
            results = rewrite_hours(context, dp, hours, source, destination, run_cutoff(context))
        for key, result in zip(keys, results):
            # Each hour's partition records its own figures, also in a run over many hours;
            # an hour without rows is recorded too (rows 0, no file): exported, not missing.
            context.add_asset_metadata(hour_metadata(result), partition_key=key)
        return dg.MaterializeResult()

    return export_asset


def build_export_assets(settings: Settings, partitions_def: dg.HourlyPartitionsDefinition) -> list[dg.AssetsDefinition]:
    retry_policy = export_retry_policy(settings)
    return [build_export_asset(dp, partitions_def, retry_policy) for dp in DATA_POINTS.values()]
