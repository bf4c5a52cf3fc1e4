"""The trigger and event API's request and response shapes, as JSON Schema, and the OpenAPI
document the service publishes.

The request schemas are the platform's published ones (the `request_json/` schemas its Python
SDK validates with before sending), with the API's own limits added: a workflow slug of
`^[a-z0-9-_]+$`, 1 to 100 recipients, a recipient either a user (`distinct_id` and channel
settings such as `$email`, `$sms`, `$channels`) or an object (`id` and `object_type`).
"""

from __future__ import annotations

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_BODY_BYTES = 800 * 1024  # the API's and the SDK's limit for one call
MAX_RECIPIENTS = 100
MAX_BULK_ITEMS = 100  # the SDK sends bulk calls in chunks of at most 100

_NON_EMPTY = {"type": "string", "minLength": 1}
_ONE_OR_MANY_STRINGS = {"anyOf": [_NON_EMPTY, {"type": "array", "minItems": 1, "maxItems": 10, "items": _NON_EMPTY}]}
CHANNELS = ["androidpush", "iospush", "webpush", "email", "sms", "whatsapp", "slack", "inbox", "messenger", "ms_teams"]

USER_RECIPIENT = {
    "type": "object",
    "description": "a user: distinct_id and, optionally, channel settings used for this call",
    "properties": {
        "distinct_id": _NON_EMPTY,
        "is_transient": {"type": ["boolean", "null"]},
        "$channels": {"type": "array", "items": {"type": "string", "enum": CHANNELS}},
        "$email": _ONE_OR_MANY_STRINGS,
        "$sms": _ONE_OR_MANY_STRINGS,
        "$whatsapp": _ONE_OR_MANY_STRINGS,
        "$inbox": _ONE_OR_MANY_STRINGS,
        "$messenger": _ONE_OR_MANY_STRINGS,
        "$androidpush": {"type": ["object", "array"]},
        "$iospush": {"type": ["object", "array"]},
        "$webpush": {"type": ["object", "array"]},
        "$slack": {"type": ["object", "array"]},
        "$ms_teams": {"type": ["object", "array"]},
        "$preferred_language": {"type": ["string", "null"]},
        "$locale": {"type": ["string", "null"]},
        "$timezone": {"type": ["string", "null"]},
    },
    "required": ["distinct_id"],
}
OBJECT_RECIPIENT = {
    "type": "object",
    "description": "an object, whose subscribers get the workflow",
    "properties": {"id": _NON_EMPTY, "object_type": _NON_EMPTY},
    "required": ["id", "object_type"],
}
RECIPIENT = {"anyOf": [_NON_EMPTY, USER_RECIPIENT, OBJECT_RECIPIENT]}

WORKFLOW_TRIGGER = {
    "type": "object",
    "title": "workflow_trigger",
    "properties": {
        "workflow": {"type": "string", "pattern": "^[a-z0-9-_]+$", "minLength": 1, "description": "workflow slug"},
        "recipients": {"type": "array", "items": RECIPIENT, "minItems": 1, "maxItems": MAX_RECIPIENTS},
        "actor": {"anyOf": [_NON_EMPTY, USER_RECIPIENT, {"type": "null"}]},
        "data": {"type": "object", "description": "variables of the workflow's templates"},
        "tenant_id": {"type": ["string", "null"], "maxLength": 64},
        "$idempotency_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
        "cancellation_key": {"type": ["string", "null"], "maxLength": 255},
        "metadata": {"type": "object"},
    },
    "required": ["workflow", "recipients"],
    "additionalProperties": False,
}
EVENT = {
    "type": "object",
    "title": "track_event",
    "properties": {
        "event": {"type": "string", "minLength": 1, "maxLength": 255, "description": "event name"},
        "distinct_id": _NON_EMPTY,
        "properties": {"type": "object"},
        "$insert_id": {"type": "string", "minLength": 1, "maxLength": 255, "description": "unique id of the event"},
        "$time": {"type": "integer", "minimum": 0, "description": "unix epoch in milliseconds"},
        "env": {"type": "string", "description": "workspace key"},
        "tenant_id": {"type": ["string", "null"], "maxLength": 64},
        "brand_id": {"type": ["string", "null"], "maxLength": 64},
        "$idempotency_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
    },
    "required": ["event", "distinct_id"],
}

_validators = {"workflow": Draft202012Validator(WORKFLOW_TRIGGER), "event": Draft202012Validator(EVENT)}
# The same schemas compiled by jsonschema-rs, for the common case of a valid body: a tenth of
# the intake's time under load went to validating in Python. jsonschema's best_match then names
# what is wrong with an invalid one.
_fast_validators = {"workflow": jsonschema_rs.Draft202012Validator(WORKFLOW_TRIGGER),
                    "event": jsonschema_rs.Draft202012Validator(EVENT)}


def problem(kind: str, body: object) -> tuple[str, str] | None:
    """(field, reason) of the most relevant thing wrong with a workflow or event body; None when valid."""
    if _fast_validators[kind].is_valid(body):
        return None
    error: ValidationError | None = best_match(_validators[kind].iter_errors(body))
    if error is None:
        return None
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "body"
    reason = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    return field, reason


# ---- responses ---------------------------------------------------------------------------------
ACCEPTED = {"type": "object", "properties": {"status": {"const": "success"}}, "required": ["status"]}
ERROR = {
    "type": "object",
    "properties": {
        "status": {"const": "error"},
        "error": {"type": "object", "properties": {
            "type": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
            "required": ["type", "message"]},
    },
    "required": ["status", "error"],
}
BULK_RECORD = {
    "type": "object",
    "properties": {"status": {"enum": ["success", "error"]}, "status_code": {"type": "integer"},
                   "error": ERROR["properties"]["error"]},
    "required": ["status", "status_code"],
}
BULK_ACCEPTED = {
    "type": "object",
    "properties": {"status": {"enum": ["success", "partial", "fail"]},
                   "records": {"type": "array", "items": BULK_RECORD}},
    "required": ["status", "records"],
}


def _operation(summary: str, body: dict, accepted: dict, operation_id: str) -> dict:
    def error(description: str) -> dict:
        schema = {"$ref": "#/components/schemas/Error"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    return {"post": {
        "operationId": operation_id,
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": {"description": "accepted", "content": {"application/json": {"schema": accepted}}},
            "400": error("invalid body: the field and the reason"),
            "401": error("unknown key, bad signature or a Date more than 15 minutes off"),
            "413": error("body over 800 KB"),
            "503": error("the source database did not take the call: nothing recorded, try again"),
        },
    }}


def openapi_document() -> dict:
    trigger = {"anyOf": [{"$ref": "#/components/schemas/WorkflowTrigger"},
                         {"type": "array", "minItems": 1, "maxItems": MAX_BULK_ITEMS,
                          "items": {"$ref": "#/components/schemas/WorkflowTrigger"}}]}
    trigger_accepted = {"anyOf": [{"$ref": "#/components/schemas/Accepted"},
                                  {"$ref": "#/components/schemas/BulkAccepted"}]}
    event = {"$ref": "#/components/schemas/Event"}
    events = {"type": "array", "minItems": 1, "maxItems": MAX_BULK_ITEMS, "items": event}
    accepted = {"$ref": "#/components/schemas/Accepted"}
    bulk = {"$ref": "#/components/schemas/BulkAccepted"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "notif_export intake: the trigger and event API", "version": "1"},
        "paths": {
            "/trigger/": _operation("Trigger a workflow (an array: several)", trigger, trigger_accepted, "trigger"),
            "/{workspace_key}/trigger/": {
                **_operation("Trigger a workflow (legacy path)", trigger, trigger_accepted, "trigger_legacy"),
                "parameters": [{"name": "workspace_key", "in": "path", "required": True, "schema": {"type": "string"}}],
            },
            "/event/": _operation("Track an event", event, accepted, "event"),
            "/v2/event/": _operation("Track an event", event, accepted, "event_v2"),
            "/v2/bulk/event/": _operation("Track several events", events, bulk, "bulk_event"),
        },
        "components": {
            "schemas": {"WorkflowTrigger": WORKFLOW_TRIGGER, "Event": EVENT, "Accepted": ACCEPTED,
                        "BulkAccepted": BULK_ACCEPTED, "Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "NOTIF_EXPORT_INTAKE_API_KEY"},
                "signature": {"type": "apiKey", "in": "header", "name": "Authorization",
                              "description": "<workspace_key>:<base64 HMAC-SHA256 of method, body MD5, "
                                             "Content-Type, Date and request URI>, as the SDKs sign"},
            },
        },
        "security": [{"bearer": []}, {"signature": []}],
    }
