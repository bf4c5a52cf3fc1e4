"""The step every export run takes, whether an asset materialization (a range of hours) or a
sync run (scattered hours): rewrite each hour's file and describe it for Dagster."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import dagster as dg

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.lib.contract import DataPoint
from notif_export.lib.export import HourExport, rewrite_hour
from notif_export.lib.export_pool import ExportTarget, rewrite_hours_in_processes, worth_processes
from notif_export.lib.hours import hour_key
from notif_export.lib.run_status import BACKFILL_TAG


def hour_metadata(result: HourExport) -> dict[str, dg.MetadataValue]:
    return {
        "rows": dg.MetadataValue.int(result.rows),
        "bytes": dg.MetadataValue.int(result.bytes),
        "s3_uri": dg.MetadataValue.path(result.uri),
        "max_updated_at": dg.MetadataValue.text(
            result.max_updated_at.isoformat() if result.max_updated_at else ""
        ),
        # Rows the bad-row rules skipped or changed (lib/bad_rows.py), total and per kind.
        "bad_rows": dg.MetadataValue.int(sum(result.bad_rows.values())),
        "bad_rows_by_kind": dg.MetadataValue.json(result.bad_rows),
    }


def run_cutoff(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> datetime:
    """The moment a run exports the source as of: its backfill's creation (so the runs of one
    backfill of several data points share it), else the run's own creation."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    backfill = context.instance.get_backfill(backfill_id) if backfill_id else None
    if backfill is not None:
        return datetime.fromtimestamp(backfill.backfill_timestamp, tz=timezone.utc)
    record = context.instance.get_run_record_by_id(context.run.run_id)
    return record.create_timestamp if record else datetime.now(timezone.utc)


def rewrite_hours(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    dp: DataPoint,
    hours: Iterable[datetime],
    source: SourceResource,
    destination: DestinationResource,
    created_before: datetime,
) -> list[HourExport]:
    """Rewrite each hour's file (rows created before the cutoff), in hour order: several hours
    at once in `source.export_processes` worker processes when they hold enough rows to pay for
    starting them, else in turn sharing one database and one S3 client."""
    log, run_id = context.log, context.run.run_id
    hours = list(hours)
    db = source.open()
    try:
        db.check_schema()
        if worth_processes(db, dp, hours, created_before, source.export_processes):
            target = ExportTarget(source_url=source.url, access=destination.connection.access(),
                                  destination=destination.destination)
            done = {}
            for hour, result in rewrite_hours_in_processes(target, dp.name, hours, source.export_processes,
                                                           run_id, created_before):
                _log_hour(log, dp, hour, result)
                done[hour] = result
            return [done[hour] for hour in hours]
        s3 = destination.connection.get_client()
        results = []
        for hour in hours:
            result = rewrite_hour(db, s3, destination.destination, dp, hour, run_id=run_id,
                                  created_before=created_before)
            _log_hour(log, dp, hour, result)
            results.append(result)
        return results
    finally:
        db.dispose()


def _log_hour(log: dg.DagsterLogManager, dp: DataPoint, hour: datetime, result: HourExport) -> None:
    log.info(
        f"{dp.name} {hour:%Y-%m-%d %H}:00: "
        + (f"{result.rows} rows, {result.bytes} bytes -> {result.uri}" if result.written
           else f"no rows, {result.uri} removed")
    )
    if result.warning:
        log.warning(result.warning)
    if result.bad_rows:
        log.warning(f"{dp.name} {hour:%Y-%m-%d %H}:00: bad rows (see the rules in lib/bad_rows.py): "
                    + ", ".join(f"{n} {kind}" for kind, n in result.bad_rows.items()))


def rewrite_and_record_hours(
    context: dg.OpExecutionContext,
    dp: DataPoint,
    hours: list[datetime],
    source: SourceResource,
    destination: DestinationResource,
    created_before: datetime,
) -> list[HourExport]:
    """`rewrite_hours` outside the asset (the sync job, the reconciliation), each hour recorded as
    a materialization of its partition, so the partitions view shows exactly these hours."""
    results = rewrite_hours(context, dp, hours, source, destination, created_before)
    for hour, result in zip(hours, results):
        record_hour(context, dp, hour, result)
    return results


def record_hour(context: dg.OpExecutionContext, dp: DataPoint, hour: datetime, result: HourExport) -> None:
    context.log_event(dg.AssetMaterialization(asset_key=dp.name, partition=hour_key(hour),
                                              metadata=hour_metadata(result)))
