"""Dagster's GraphQL API (what its UI uses) for the commands that act on a running Dagster:
`notif-export backfill` and the demo."""

from __future__ import annotations

import requests

LOCATION = "notif_export"  # workspace.yaml's location_name
# A backfill's statuses (Dagster's BulkActionStatus) while it runs, and when it ended well.
BACKFILL_RUNNING = ("REQUESTED", "CANCELING", "FAILING")
BACKFILL_SUCCEEDED = ("COMPLETED", "COMPLETED_SUCCESS")


class DagsterApiError(RuntimeError):
    pass


class CodeLocationError(DagsterApiError):
    """Dagster runs but could not load notif_export's definitions."""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    try:
        response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise DagsterApiError(f"Dagster does not answer on {url} ({type(exc).__name__}): start it (the demo, or "
                              "`dagster dev`) or set NOTIF_EXPORT_DAGSTER_URL to its address") from None
    body = response.json()
    if body.get("errors"):
        raise DagsterApiError(f"Dagster's GraphQL API answered: {body['errors'][0].get('message')}")
    return body["data"]


def location_loaded(url: str) -> bool:
    """Whether notif_export's code location has loaded (an error if it failed to)."""
    data = graphql(url, """{ workspaceOrError { ... on Workspace { locationEntries {
        name locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
    for entry in data["workspaceOrError"]["locationEntries"]:
        if entry["name"] == LOCATION:
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                raise CodeLocationError(f"Dagster could not load notif_export: {loaded['message'].strip()}")
            return bool(loaded)
    return False


def sensor_has_ticked(url: str, sensor: str) -> bool:
    data = graphql(url, """query Ticks($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
        ... on Sensor { sensorState { ticks(limit: 1) { status } } } } }""",
                   {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                                 "sensorName": sensor}})
    state = (data["sensorOrError"] or {}).get("sensorState") or {}
    return any(t["status"] in ("SUCCESS", "SKIPPED") for t in state.get("ticks", []))


def has_backfills(url: str) -> bool:
    data = graphql(url, "{ partitionBackfillsOrError(limit: 1) { ... on PartitionBackfills { results { id } } } }")
    return bool(data["partitionBackfillsOrError"].get("results"))


def launch_backfill(url: str, data_points: list[str] | tuple[str, ...], partition_keys: list[str] | None,
                    title: str) -> str:
    """A backfill of the export assets over the given partitions (all of them with None), as
    the UI launches one; its id."""
    params: dict = {"assetSelection": [{"path": [name]} for name in data_points], "title": title}
    if partition_keys is None:
        params["allPartitions"] = True
    else:
        params["partitionNames"] = partition_keys
    data = graphql(url, """mutation Backfill($params: LaunchBackfillParams!) {
        launchPartitionBackfill(backfillParams: $params) {
          __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                   {"params": params})
    result = data["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise DagsterApiError(f"Dagster refused the backfill: {result.get('message') or result['__typename']}")
    return result["backfillId"]


def backfill_status(url: str, backfill_id: str) -> str:
    data = graphql(url, """query Backfill($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status } } }""", {"id": backfill_id})
    return data["partitionBackfillOrError"]["status"]


def finished_runs(url: str, updated_after: float) -> list[dict]:
    """Runs finished (or updated) since a moment, with their tags and materializations."""
    data = graphql(url, """query Finished($after: Float) {
      runsOrError(filter: {statuses: [SUCCESS, FAILURE, CANCELED], updatedAfter: $after}, limit: 100) {
        ... on Runs { results { runId jobName status startTime endTime updateTime tags { key value }
          assetMaterializations { assetKey { path } partition
            metadataEntries { label ... on IntMetadataEntry { intValue } } } } } } }""", {"after": updated_after})
    return data["runsOrError"].get("results", [])
