"""The API's two authentication schemes, checked against the intake settings.

- `Authorization: Bearer <API key>`
- `Authorization: <workspace_key>:<signature>`, as the platform's SDKs sign: base64 of the
  HMAC-SHA256, keyed with the workspace secret, of "method\\nbody MD5 (hex)\\nContent-Type\\nDate\\n
  request URI" (an empty body signs an empty MD5); the `Date` header must be within 15 minutes
  of the server's clock, so that a captured request cannot be replayed later.

No message here ever contains a key, a secret or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from notif_export.lib.settings import IntakeSettings

MAX_CLOCK_SKEW = timedelta(minutes=15)


class Unauthorized(Exception):
    """The request is not signed by this workspace; the message says why (no secrets)."""


@dataclass(frozen=True)
class Request:
    """What the schemes look at."""

    method: str
    uri: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes


def signature(secret: str, method: str, body: bytes, content_type: str, date: str, uri: str) -> str:
    content_md5 = hashlib.md5(body).hexdigest() if body else ""
    to_sign = f"{method}\n{content_md5}\n{content_type}\n{date}\n{uri}"
    return base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).digest()).decode()


def authenticate(settings: IntakeSettings, request: Request, now: datetime | None = None) -> str:
    """The scheme that admitted the request ("bearer" or "signature"); Unauthorized otherwise."""
    header = request.headers.get("authorization", "")
    if not header:
        raise Unauthorized("no Authorization header: send `Bearer <API key>` or `<workspace_key>:<signature>`")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer":
        if settings.api_key and hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            return "bearer"
        raise Unauthorized("unknown API key")
    key, sep, sig = header.partition(":")
    known = hmac.compare_digest(key.encode(), settings.workspace_key.encode())
    if not sep or not settings.workspace_secret or not known:
        raise Unauthorized("unknown workspace key")
    date = request.headers.get("date", "")
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise Unauthorized("a signed request needs a Date header (RFC 7231, e.g. 'Tue, 01 Dec 2026 10:00:00 GMT')")
    sent = sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc)
    if abs((now or datetime.now(timezone.utc)) - sent) > MAX_CLOCK_SKEW:
        raise Unauthorized("the Date header is more than 15 minutes away from the server's clock")
    expected = signature(settings.workspace_secret, request.method, request.body,
                         request.headers.get("content-type", ""), date, request.uri)
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise Unauthorized("bad signature")
    return "signature"
