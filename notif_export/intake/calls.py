"""One API call as the intake records it: its `requests` row and what the execution model starts.

A valid call is answered 202 and runs its workflow (a trigger, or the workflow an event starts);
an invalid one is answered 400 naming the field and the reason, and recorded as a `failure`
request with its error. Every row holds the payload exactly as sent.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from notif_export.lib.execution_model import EVENTS, WORKFLOWS, Batch, ExecutionModel

ACCEPTED = (202, {"status": "success"})
DEFAULT_TENANT = "default"


def error_body(kind: str, message: str, field_name: str | None = None) -> dict:
    error = {"type": kind, "message": message}
    if field_name:
        error["field"] = field_name
    return {"status": "error", "error": error}


@dataclass
class Call:
    """One workflow trigger or event, valid or not."""

    kind: str  # "workflow" or "event"
    body: object  # the parsed JSON (any shape when invalid)
    payload: str  # the JSON text as sent
    received_at: datetime
    metadata: dict
    problem: tuple[str, str] | None = None  # (field, reason) when invalid
    key: str = field(init=False)

    def __post_init__(self) -> None:
        given = self._str("$idempotency_key") or (self._str("$insert_id") if self.kind == "event" else None)
        # An invalid call is recorded under a key of its own: the same key, fixed, must still run.
        self.key = given if given and self.problem is None else str(uuid.uuid4())

    @property
    def answer(self) -> tuple[int, dict]:
        if self.problem is None:
            return ACCEPTED
        field_name, reason = self.problem
        return 400, error_body("validation_error", f"{field_name}: {reason}", field_name)

    def _str(self, name: str) -> str | None:
        value = self.body.get(name) if isinstance(self.body, dict) else None
        return value if isinstance(value, str) and value else None

    def recipients(self) -> list[str]:
        """distinct_id of each recipient, or `object_type/id` for an object; each once."""
        if self.kind == "event":
            found = [self._str("distinct_id")]
        else:
            found = []
            for r in self.body.get("recipients") if isinstance(self.body, dict) and isinstance(
                    self.body.get("recipients"), list) else []:
                if isinstance(r, str):
                    found.append(r)
                elif isinstance(r, dict) and isinstance(r.get("distinct_id"), str):
                    found.append(r["distinct_id"])
                elif isinstance(r, dict) and isinstance(r.get("id"), str) and isinstance(r.get("object_type"), str):
                    found.append(f"{r['object_type']}/{r['id']}")
        return list(dict.fromkeys(r for r in found if r))

    def actor(self) -> str | None:
        actor = self.body.get("actor") if isinstance(self.body, dict) else None
        if isinstance(actor, dict):
            actor = actor.get("distinct_id")
        return actor if isinstance(actor, str) and actor else None

    def run(self, model: ExecutionModel, batch: Batch) -> None:
        """Add the call's `requests` row to the batch and, when it is valid, what its workflow writes."""
        t = self.received_at
        name = self._str("workflow" if self.kind == "workflow" else "event")
        tenant = self._str("tenant_id") or DEFAULT_TENANT
        recipients = self.recipients()
        slug = name if self.kind == "workflow" else EVENTS.get(name or "")
        status_code, answer = self.answer
        errors: list[dict] = []
        executions: list[dict] = []
        if self.problem is not None:
            errors.append(_error("invalid_payload", answer["error"]["message"], slug))
        elif slug is not None and slug not in WORKFLOWS:
            errors.append(_error("workflow_not_found", f"no workflow {slug!r} in this workspace", slug))
        elif slug is not None:
            data = self.body.get("data") if self.kind == "workflow" else self.body.get("properties")
            for recipient in recipients:
                exec_id = model.random_hex(26)
                executions.append({"distinct_id": recipient, "exec_id": exec_id, "workflow_slug": slug})
                model.execution(batch, exec_id, recipient, tenant, self.key, slug, data or {}, t, t)
        batch.requests.append({
            "workspace_key": model.workspace_key, "created_at": t, "updated_at": t,
            "api_type": self.kind, "api_name": name,
            "wf_trigger_type": "api" if self.kind == "workflow" else "event",
            "distinct_id_list": recipients, "actor": self.actor(), "tenant_id": tenant,
            "payload": self.payload, "response": json.dumps({"status_code": status_code, "body": answer}),
            "metadata": json.dumps(self.metadata), "errors": errors, "executions": executions,
            "idempotency_key": self.key, "status": "failure" if errors else "completed",
        })


def _error(code: str, description: str, slug: str | None) -> dict:
    return {"error_code": code, "error_description": description, "error_type": "request", "severity": "error",
            "workflow_slug": slug}
