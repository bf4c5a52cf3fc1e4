"""The shared resources and executor, for `notif_export.definitions` to assemble with the areas."""

import dagster as dg

from notif_export.defs.shared.resources import build_resources
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    # A run's steps run in the run's own process, one after another: most runs are one step, and
    # a step of many hours spreads them over its own worker processes (lib/export_pool.py), so
    # a second Python process per step (Dagster and the exporter, started again) bought nothing.
    return dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor)
