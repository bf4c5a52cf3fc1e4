"""The whole code location loads, with exactly the assets and resources it promises."""

from datetime import datetime, timezone

import dagster as dg

from notif_export.definitions import build_definitions, defs


def test_definitions_load_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(tmp_path))
    monkeypatch.setenv("NOTIF_EXPORT_START", "2025-01-15-14:00")
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    keys = {key.to_user_string() for key in loaded.resolve_all_asset_keys()}
    assert {"requests", "workflow_executions", "messages"} <= keys
    messages = loaded.get_assets_def("messages")
    assert messages.partitions_def.get_first_partition_key() == "2025-01-15-14:00"
    assert messages.group_names_by_key[dg.AssetKey("messages")] == "exports"


def test_the_current_open_hour_is_a_partition(tmp_path):
    loaded = build_definitions({"NOTIF_EXPORT_HOME": str(tmp_path)})
    partitions = loaded.get_assets_def("messages").partitions_def
    last = partitions.get_last_partition_key()
    window = partitions.time_window_for_partition_key(last)
    assert window.start <= datetime.now(timezone.utc) < window.end
