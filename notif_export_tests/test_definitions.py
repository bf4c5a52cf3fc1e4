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

    # the dbt models sit downstream of the exports, their tests as asset checks
    models = loaded.get_assets_def(dg.AssetKey(["analytics", "messages"]))
    assert models.asset_deps[dg.AssetKey(["analytics", "stg_messages"])] == {dg.AssetKey("messages")}
    assert {"delivery_daily", "errors_hourly", "message_trace"} <= {k.path[-1] for k in models.keys}
    assert any(c.asset_key == dg.AssetKey(["analytics", "messages"]) and c.name == "unique_messages_message_key"
               for c in models.check_specs)
    assert {j.name for j in loaded.resolve_all_job_defs()} >= {"sync_dirty_hours", "build_analytics",
                                                                "check_bucket_access"}
    assert {s.name for s in loaded.sensors} == {"sync", "analytics_after_sync"}


def test_the_current_open_hour_is_a_partition(tmp_path):
    loaded = build_definitions({"NOTIF_EXPORT_HOME": str(tmp_path)})
    partitions = loaded.get_assets_def("messages").partitions_def
    last = partitions.get_last_partition_key()
    window = partitions.time_window_for_partition_key(last)
    assert window.start <= datetime.now(timezone.utc) < window.end
