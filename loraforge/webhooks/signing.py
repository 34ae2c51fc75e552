"""Standard Webhooks signing: the secret format, the three headers and their verification.

A secret is `whsec_` followed by the base64 of 32 random bytes. A message carries `webhook-id`
(unique per event, the same on every retry so receivers can de-duplicate), `webhook-timestamp`
(Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}` keyed with the decoded secret. `verify` is what a receiver runs; the tests
use it as their receiver and it documents the scheme for users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from loraforge.errors import ValidationError

SECRET_PREFIX = "whsec_"
# Receivers should refuse messages older or newer than this; it bounds replays.
TOLERANCE_S = 5 * 60


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValidationError("webhook secret must be whsec_ followed by base64") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(secret, msg_id, ts, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
    """True if any v1 signature in `headers` matches and the timestamp is within tolerance."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_text, sigs = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and ts_text and sigs):
        return False
    try:
        ts = int(ts_text)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE_S:
        return False
    expected = signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in sigs.split())
