"""The step every export run takes, whether an asset materialization (a range of hours) or a
sync run (scattered hours): rewrite each hour's file and describe it for Dagster."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import dagster as dg

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.lib.contract import DataPoint
from notif_export.lib.export import HourExport, rewrite_hour


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
    hours: Iterable[datetime],
    source: SourceResource,
    destination: DestinationResource,
    run_id: str,
) -> list[HourExport]:
    """Rewrite each hour's file in turn, sharing one database and one S3 client."""
    db = source.open()
    db.check_schema()
    s3 = destination.connection.get_client()
    target = destination.destination
    results = []
    try:
        for hour in hours:
            result = rewrite_hour(db, s3, target, dp, hour, run_id=run_id)
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
