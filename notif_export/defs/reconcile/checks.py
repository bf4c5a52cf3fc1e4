"""One asset check per exported data point: does the bucket equal the source over the recent
window? Drifted hours are rewritten in the same run and verified again; the check fails only
when drift remains."""

from datetime import datetime, timedelta, timezone

import dagster as dg
from botocore.exceptions import ClientError
from dagster_duckdb import DuckDBResource

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.defs.shared.rewrite_hours import record_hour, rewrite_and_record_hours
from notif_export.defs.shared.runs import RECONCILE_CHECK_NAME, SOURCE_POOL
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.export import HourExport
from notif_export.lib.hours import hour_key, parse_hour
from notif_export.lib.s3_upload import abort_stale_uploads
from notif_export.lib.settings import Settings
from notif_export.lib.verify import (
    cold_tolerance,
    recent_window,
    reconcile,
    render,
    verify,
)


def build_reconcile_check(settings: Settings, dp: DataPoint) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dp.name,
        name=RECONCILE_CHECK_NAME,
        pool=SOURCE_POOL,
        description=f"Compares every hour of the last {settings.reconcile_window_hours} hours of `{dp.name}` in "
        "the bucket with the source (rows missing, stale or extra, files for empty hours, schema), "
        "rewrites the drifted hours and verifies them again. Fails when drift remains.",
    )
    def bucket_matches_source(
        context: dg.AssetCheckExecutionContext, source: SourceResource, destination: DestinationResource,
        duckdb: DuckDBResource,
    ) -> dg.AssetCheckResult:
        now = datetime.now(timezone.utc)
        start, end, settled_before = recent_window(settings, now)
        cold = cold_tolerance(settings, now)  # cold hours may lag by the sync's cadence: not drift within it
        cold_note = (f"; in cold hours, up to {hour_key(cold.newest_cold_hour)}, those updated after "
                     f"{cold.settled_before:%H:%M:%S} UTC" if cold else "")
        # Only what has been exported is reconciled: hours before the first exported one are
        # history not exported yet (the sync goes forward only; a backfill brings them).
        exported = context.instance.get_materialized_partitions(dg.AssetKey(dp.name))
        if not exported:
            return dg.AssetCheckResult(passed=True, description="nothing exported yet", metadata={"hours_checked": 0})
        start = max(start, parse_hour(min(exported)))
        db = source.open()
        s3 = destination.connection.get_client()
        op_context = context.op_execution_context

        def repair(hours: list[datetime]) -> None:
            rewrite_and_record_hours(op_context, dp, hours, source, destination, now)

        try:
            with duckdb.get_connection() as con:
                connect_to_bucket(con, destination.connection.access())
                found, after = reconcile(
                    lambda: verify(db, s3, destination.destination, dp, start, end, con, settled_before, cold),
                    repair)
            aborted = abort_killed_uploads(context, s3, destination.destination, dp, now, settings)
        finally:
            db.dispose()
        remaining = after if after is not None else found
        # An hour without rows has no file: recorded as exported (rows 0), not left "missing".
        target = destination.destination
        for hour in found.empty_hours:
            if hour_key(hour) not in exported:
                record_hour(op_context, dp, hour, HourExport(dp.name, hour, target.uri(target.object_key(dp.name, hour)),
                                                             rows=0, bytes=0, max_updated_at=None))
        for line in render([found]):
            context.log.info(line)
        totals = found.totals()
        return dg.AssetCheckResult(
            passed=not remaining.drift,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{len(remaining.drift)} hours still differ from the source" if remaining.drift
                         else f"the bucket equals the source ({len(found.drift)} hours repaired)"),
            metadata={
                "hours_checked": found.hours_checked,
                "hours_drifted": len(found.drift),
                "hours_repaired": len(found.drift) - len(remaining.drift),
                "hours_still_drifted": len(remaining.drift),
                "empty_hours_recorded": sum(hour_key(h) not in exported for h in found.empty_hours),
                "stale_uploads_aborted": aborted,
                "rows_within_cold_bound": sum(found.within_cold_bound.values()),
                **{name.replace(" ", "_"): n for name, n in totals.items()
                   if name.startswith(("rows", "files", "bad"))},
                "window": f"{hour_key(start)} to {hour_key(end)} (rows updated after {settled_before:%H:%M:%S} "
                          f"UTC are the sync's{cold_note})",
                "drift": dg.MetadataValue.md("\n".join(["```", *render([found]), "```"])),
            },
        )

    return bucket_matches_source


def abort_killed_uploads(context: dg.AssetCheckExecutionContext, s3, target: Destination, dp: DataPoint,
                         now: datetime, settings: Settings) -> int:
    """The multipart uploads of killed runs: older than any run may take (the sync's run timeout)."""
    try:
        return abort_stale_uploads(s3, target.bucket, target.prefix,
                                   now - timedelta(seconds=settings.sync_run_timeout_seconds),
                                   lambda key: key.endswith(f"/{dp.name}.parquet"))
    except ClientError as exc:  # e.g. no s3:ListBucketMultipartUploads: the lifecycle rule is left to do it
        context.log.warning(f"could not list or abort incomplete multipart uploads: {exc}")
        return 0


def build_reconcile_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    return [build_reconcile_check(settings, DATA_POINTS[name]) for name in settings.data_points]
