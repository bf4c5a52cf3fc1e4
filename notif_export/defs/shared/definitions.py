"""The shared resources and executor, for `notif_export.definitions` to assemble with the areas."""

import dagster as dg

from notif_export.defs.shared.resources import build_resources
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    # Every run of this code location is one step (an export of many hours spreads over its own
    # worker processes, lib/export_pool.py): running that step in the run's own process saves
    # starting a second Python process, with Dagster and the exporter, for every run.
    return dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor)
