"""The Dagster code location: assembled from what each notif_export/defs/<area>/ exposes."""

from __future__ import annotations

import os

import dagster as dg

from notif_export.defs.analytics import definitions as analytics
from notif_export.defs.checks import definitions as checks
from notif_export.defs.exports import definitions as exports
from notif_export.defs.json_objects import definitions as json_objects
from notif_export.defs.reconcile import definitions as reconcile
from notif_export.defs.shared import definitions as shared
from notif_export.defs.sync import definitions as sync
from notif_export.lib.settings import Settings

AREAS = (shared, exports, json_objects, sync, reconcile, analytics, checks)


def build_definitions(env: dict[str, str]) -> dg.Definitions:
    settings = Settings.from_env(env)
    return dg.Definitions.merge(*(area.build_defs(settings) for area in AREAS))


@dg.definitions
def defs() -> dg.Definitions:
    # The environment is read here, once, when Dagster loads the code location; never at import.
    return build_definitions(dict(os.environ))
