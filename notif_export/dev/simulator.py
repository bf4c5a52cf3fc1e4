"""Traffic shaped like a SuprSend workspace's: API requests and what they cause.

Deterministic for a seed and a clock. The requests are made up here; what each one starts
(workflow step logs, per-channel messages and their later status changes) is the execution
model's (`notif_export.lib.execution_model`), shared with the intake service.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from notif_export.lib.execution_model import EVENTS, WORKFLOWS, Batch, ExecutionModel
from notif_export.lib.source import SourceDatabase

if TYPE_CHECKING:
    from suprsend import Suprsend

WORKSPACE_KEY = "ws_6b9d2c1e"
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli"]
BROADCAST_LISTS = ["all-users", "beta-testers", "eu-customers"]


@dataclass
class TrafficMix:
    """What a mid-size workspace sends; every rate is an option of `notif-export simulate`."""

    requests_per_hour: float = 600
    event_share: float = 0.15
    broadcast_share: float = 0.03
    bulk_share: float = 0.12          # workflow triggers with 2 to 100 recipients
    request_failure_rate: float = 0.02
    users: int = 50_000


class Simulator(ExecutionModel):
    def __init__(self, source: SourceDatabase, seed: int = 0, mix: TrafficMix | None = None):
        super().__init__(source, random.Random(seed), WORKSPACE_KEY)
        self.mix = mix or TrafficMix()

    def _recipient(self) -> str:
        if self.rng.random() < 0.05:
            return f"team/eng-{self.rng.randrange(200)}"
        return f"user_{self.rng.randrange(self.mix.users)}"

    # ---- generation ----------------------------------------------------------------------
    def traffic(self, start: datetime, end: datetime, now: datetime) -> Batch:
        """Requests received in [start, end) and what they caused, in their state as of `now`."""
        hours = (end - start).total_seconds() / 3600
        count = poisson(self.rng, self.mix.requests_per_hour * hours)
        times = sorted(start + (end - start) * self.rng.random() for _ in range(count))
        batch = Batch()
        for t in times:
            self._request(batch, t, now)
        return batch

    def _request(self, batch: Batch, t: datetime, now: datetime) -> None:
        rng, mix = self.rng, self.mix
        at = lambda seconds: min(t + timedelta(seconds=seconds), now)  # noqa: E731
        roll = rng.random()
        if roll < mix.broadcast_share:
            api_type, api_name, trigger, slug = "broadcast", rng.choice(BROADCAST_LISTS), None, None
            recipients = [self._recipient() for _ in range(rng.randint(5, 60))]
        elif roll < mix.broadcast_share + mix.event_share:
            api_name = rng.choice(list(EVENTS))
            api_type, trigger, slug = "event", "event", EVENTS[api_name]
            recipients = [self._recipient()]
        else:
            slug = rng.choice(list(WORKFLOWS))
            api_type, api_name, trigger = "workflow", slug, "api"
            bulk = rng.random() < mix.bulk_share
            recipients = [self._recipient() for _ in range(min(100, 2 + int(rng.expovariate(1 / 12))) if bulk else 1)]
        recipients = list(dict.fromkeys(recipients))
        tenant = rng.choice(TENANTS) if rng.random() < 0.3 else "default"
        actor = f"user_{rng.randrange(mix.users)}" if rng.random() < 0.3 else None
        given_key = rng.random() < 0.6
        key = f"{api_name}-{self.random_hex(16)}" if given_key else self.random_uuid()
        data = {"order_id": f"ord_{rng.randrange(10**6)}", "amount": round(rng.uniform(5, 500), 2)}
        payload = {
            "workflow" if api_type == "workflow" else "event" if api_type == "event" else "list_id": api_name,
            "recipients": [{"distinct_id": r} for r in recipients[:100]],
            "data": data, "actor": actor, "tenant_id": tenant,
            **({"$idempotency_key": key} if given_key else {}),
        }
        errors: list[dict] = []
        executions: list[dict] = []
        failed = rng.random() < mix.request_failure_rate
        if failed:
            errors.append({"error_code": rng.choice(["workflow_not_found", "invalid_payload", "quota_exceeded"]),
                           "error_description": "request rejected before execution", "error_type": "request",
                           "severity": "error", "workflow_slug": slug})
            status, response = "failure", {"status_code": 422, "body": {"status": "error", "message": errors[0]["error_code"]}}
        else:
            status, response = "completed", {"status_code": 202, "body": {"status": "success"}}
            for r in recipients:
                if len(recipients) > 1 and rng.random() < 0.02:
                    errors.append({"error_code": "invalid_recipient", "error_description": f"{r}: no channel found",
                                   "error_type": "recipient", "severity": "warning", "workflow_slug": slug})
                    status = "partial_failure"
                    continue
                if api_type == "broadcast":
                    continue
                exec_id = self.random_hex(26)
                executions.append({"distinct_id": r, "exec_id": exec_id, "workflow_slug": slug})
                self.execution(batch, exec_id, r, tenant, key, slug, data, t, now)
            if api_type == "broadcast":
                broadcast_id = self.random_hex(26)
                for r in recipients:
                    for channel in ("inbox", "email"):
                        self.message(batch, t + timedelta(seconds=1), now, {
                            "wf_execution_id": None, "broadcast_execution_id": broadcast_id,
                            "recipient_distinct_id": r, "tenant_id": tenant, "idempotency_key": key,
                            "workflow_slug": None, "node_id": "broadcast", "node_name": "Broadcast",
                            "node_type": "broadcast", "template_slug": f"{api_name}-announcement",
                        }, channel)
        batch.requests.append({
            "workspace_key": WORKSPACE_KEY, "created_at": t, "updated_at": at(0.05),
            "api_type": api_type, "api_name": api_name, "wf_trigger_type": trigger,
            "distinct_id_list": recipients, "actor": actor, "tenant_id": tenant,
            "payload": json.dumps(payload), "response": json.dumps(response),
            "metadata": json.dumps({"sdk": rng.choice(["python/0.12.1", "node/1.9.0", "java/0.7.3", "http"]),
                                    "ip": f"203.0.113.{rng.randrange(1, 255)}",
                                    "country": rng.choice(["IN", "US", "DE", "BR", "SG"])}),
            "errors": errors, "executions": executions, "idempotency_key": key, "status": status,
        })

    def send(self, batch: Batch, client: Suprsend) -> dict[str, int]:
        """The batch's workflow triggers and events as API calls through the platform's SDK (to the
        intake service, which records them and runs their workflows); the batch's own execution
        rows are not written. Several triggers go as one bulk call. Broadcasts are not sent (the
        service has no broadcast API); a failed request is a trigger of a workflow that does not
        exist. Returns the calls answered 2xx and those not."""
        # Here, not at import: every `notif-export` command imports this module.
        from suprsend import Event, WorkflowTriggerRequest

        triggers, outcome = [], {"accepted": 0, "refused": 0}
        for row in batch.requests:
            payload = json.loads(row["payload"])
            key = payload.get("$idempotency_key")
            if row["api_type"] == "event":
                response = client.track_event(Event(row["distinct_id_list"][0], row["api_name"], payload["data"],
                                                    idempotency_key=key, tenant_id=row["tenant_id"]))
                outcome["accepted" if response["success"] else "refused"] += 1
            elif row["api_type"] == "workflow":
                body = {"workflow": row["api_name"] if row["status"] != "failure" else "retired-workflow",
                        "recipients": [r["distinct_id"] for r in payload["recipients"]], "data": payload["data"],
                        **({"actor": payload["actor"]} if payload["actor"] else {})}
                triggers.append(WorkflowTriggerRequest(body, idempotency_key=key, tenant_id=row["tenant_id"]))
        if len(triggers) == 1:
            response = client.workflows.trigger(triggers[0])
            outcome["accepted" if response["success"] else "refused"] += 1
        elif triggers:
            bulk = client.workflows.bulk_trigger_instance()
            bulk.append(*triggers)
            response = bulk.trigger()
            outcome["accepted"] += response.success
            outcome["refused"] += response.failure
        return outcome

    def history(self, hours: float, now: datetime, chunk: timedelta = timedelta(hours=1)) -> dict[str, int]:
        """Fill the `hours` before `now` with traffic in its state as of `now`."""
        totals: dict[str, int] = defaultdict(int)
        start = now - timedelta(hours=hours)
        while start < now:
            end = min(start + chunk, now)
            for name, n in self.write(self.traffic(start, end, now)).items():
                totals[name] += n
            start = end
        return dict(totals)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw with mean `mean` (a normal approximation above 50)."""
    if mean > 50:  # normal approximation
        return max(0, round(rng.gauss(mean, mean ** 0.5)))
    threshold, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
