"""The bucket setup checklist, as a job to run from the Dagster UI."""

import dagster as dg

from notif_export.defs.checks.jobs import check_bucket_access
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(jobs=[check_bucket_access])
