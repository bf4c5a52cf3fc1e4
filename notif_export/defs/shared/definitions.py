"""The shared resources, for `notif_export.definitions` to assemble with the areas."""

import dagster as dg

from notif_export.defs.shared.resources import build_resources
from notif_export.lib.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(resources=build_resources(settings))
