"""The sync's run: rewrite a list of hours (scattered, not a range) of one data point."""

from datetime import datetime

import dagster as dg
from pydantic import field_validator

from notif_export.defs.shared.resources import DestinationResource, SourceResource
from notif_export.defs.shared.retries import export_retry_policy, retried_if_transient
from notif_export.defs.shared.rewrite_hours import rewrite_and_record_hours, run_cutoff
from notif_export.defs.shared.runs import SOURCE_POOL
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.hours import parse_hour
from notif_export.lib.run_status import SYNC_JOB_NAME
from notif_export.lib.settings import Settings, validate_data_points


class RewriteHoursConfig(dg.Config):
    data_point: str
    hours: list[str]  # partition keys, e.g. "2025-01-15-14:00"
    # The tick's cutoff (ISO): rows created later are left to the next tick. Empty: the run's own.
    created_before: str = ""

    @field_validator("data_point")
    @classmethod
    def _known(cls, value: str) -> str:
        return validate_data_points([value])[0]


@dg.op(description="Rewrite the given hours of one data point and record each as a materialization "
                   "of that hour's partition.", pool=SOURCE_POOL)
def rewrite_dirty_hours(
    context: dg.OpExecutionContext,
    config: RewriteHoursConfig,
    source: SourceResource,
    destination: DestinationResource,
) -> None:
    dp = DATA_POINTS[config.data_point]
    hours = [parse_hour(h, "hours") for h in config.hours]
    cutoff = datetime.fromisoformat(config.created_before) if config.created_before else run_cutoff(context)
    with retried_if_transient():
        rewrite_and_record_hours(context, dp, hours, source, destination, cutoff)


def build_sync_job(settings: Settings) -> dg.JobDefinition:
    @dg.job(name=SYNC_JOB_NAME, tags={"notif_export/kind": "sync"}, op_retry_policy=export_retry_policy(settings),
            description="Started by the `sync` sensor: rewrites exactly the hours whose rows changed.")
    def sync_dirty_hours() -> None:
        rewrite_dirty_hours()

    return sync_dirty_hours
