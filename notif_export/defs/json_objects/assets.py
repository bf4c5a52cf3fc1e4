"""One asset per data point written as JSON objects (`messages_json`, ...): a materialization
writes one object per record version of the windows it is given (by the sync sensor) and
records the objects written, the failed keys and the bytes."""

import itertools
from datetime import datetime, timedelta

import dagster as dg

from notif_export.defs.shared.resources import JsonDestinationResource, SourceResource
from notif_export.defs.shared.retries import export_retry_policy, retried_if_transient
from notif_export.defs.shared.rewrite_hours import run_cutoff
from notif_export.defs.shared.runs import SOURCE_POOL
from notif_export.lib.bad_rows import BadRows
from notif_export.lib.contract import DATA_POINTS, DataPoint
from notif_export.lib.hours import hour_bounds, parse_hour
from notif_export.lib.json_objects import ObjectsWritten, write_objects
from notif_export.lib.settings import Settings
from notif_export.lib.sync import ObjectWindow

JSON_GROUP = "json_objects"


def json_asset_name(data_point: str) -> str:
    return f"{data_point}_json"


class ObjectWindowConfig(dg.Config):
    """Record versions to write: `after` < updated_at <= `until` (ISO; empty `after`: from the
    start), and in the `late_hours` (partition keys) also `late_after` < updated_at <= `after`."""

    after: str = ""
    until: str = ""
    late_after: str = ""
    late_hours: list[str] = []


class JsonObjectsConfig(dg.Config):
    # Empty (a materialization from the UI): the records updated in the hour before the run.
    windows: list[ObjectWindowConfig] = []


def window_config(window: ObjectWindow) -> dict:
    return {"after": window.after or "", "until": window.until or "", "late_after": window.late_after or "",
            "late_hours": list(window.late_hours)}


def _dt(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def build_json_asset(dp: DataPoint, retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    @dg.asset(
        name=json_asset_name(dp.name),
        group_name=JSON_GROUP,
        retry_policy=retry_policy,
        pool=SOURCE_POOL,
        kinds={"s3", "json"},
        description=f"`{dp.name}` as one JSON object per changed record version (`{{\"data\": ...}}`), keyed by "
        "NOTIF_EXPORT_JSON_KEY_TEMPLATE; written by the `sync` sensor's runs.",
    )
    def json_asset(context: dg.AssetExecutionContext, config: JsonObjectsConfig, source: SourceResource,
                   json_destination: JsonDestinationResource) -> dg.MaterializeResult:
        target = json_destination.destination
        if target.overwrite_warning:
            context.log.warning(target.overwrite_warning)
        windows = config.windows
        if not windows:
            until = run_cutoff(context)
            windows = [ObjectWindowConfig(after=(until - timedelta(hours=1)).isoformat(), until=until.isoformat())]
        db = source.open()
        s3, access = json_destination.connection.get_client(), json_destination.connection.access()
        written, bad_rows = ObjectsWritten(), BadRows()
        try:
            with retried_if_transient():
                db.check_schema()
                reads = []
                for window in windows:
                    after = _dt(window.after)
                    if window.until:
                        reads.append(db.read_updated(dp, after, _dt(window.until), bad_rows))
                    for hour in window.late_hours:
                        start, end = hour_bounds(parse_hour(hour, "late_hours"))
                        reads.append(db.read_updated(dp, _dt(window.late_after), after, bad_rows, start, end))
                # One call for all the reads: its worker processes, if any, start once.
                write_objects(s3, target, dp, itertools.chain.from_iterable(reads), context.run.run_id,
                              written=written, access=access, processes=source.export_processes)
        finally:
            db.dispose()
        context.log.info(f"{dp.name}: {written.objects} objects, {written.bytes} bytes -> "
                         f"{target.uri(target.prefix)}")
        if written.failed_keys:
            context.log.warning(f"{dp.name}: {written.failed_keys} records without a valid key were not written: "
                                + "; ".join(written.failures[:10]))
        counts: dict[str, int] = {}
        for kinds in bad_rows.by_hour().values():
            for kind, n in kinds.items():
                counts[kind] = counts.get(kind, 0) + n
        return dg.MaterializeResult(metadata={
            "objects": dg.MetadataValue.int(written.objects),
            "bytes": dg.MetadataValue.int(written.bytes),
            "failed_keys": dg.MetadataValue.int(written.failed_keys),
            "failed": dg.MetadataValue.json(written.failures),
            "windows": dg.MetadataValue.json([w.model_dump() for w in windows]),
            "bad_rows_by_kind": dg.MetadataValue.json(counts),
        })

    return json_asset


def build_json_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """An asset per data point written as JSON objects (none when NOTIF_EXPORT_JSON_DATA_POINTS is empty)."""
    retry_policy = export_retry_policy(settings)
    return [build_json_asset(DATA_POINTS[name], retry_policy) for name in settings.json_destination.data_points]
