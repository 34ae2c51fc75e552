"""HMAC-signed, expiring URLs for the local store, checked by the API's /files route.

A signed URL binds the HTTP method, the key, the expiry time and, for uploads, the required
`Content-Type` and `x-amz-acl` values, so a download link cannot be replayed as an upload and an
upload link cannot be used to publish a private file. Signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from loraforge.errors import ForbiddenError

PUBLIC_READ = "public-read"


@dataclass(frozen=True)
class SignedGrant:
    """What a verified signed URL allows."""

    method: str
    key: str
    expires: int
    content_type: str = ""
    acl: str = ""


def _mac(secret: bytes, grant: SignedGrant) -> str:
    message = "\n".join(
        [grant.method, grant.key, str(grant.expires), grant.content_type, grant.acl]
    ).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_query(secret: bytes, grant: SignedGrant) -> str:
    """The query string (without '?') that authorises `grant`."""
    params = {"expires": str(grant.expires)}
    if grant.content_type:
        params["content_type"] = grant.content_type
    if grant.acl:
        params["acl"] = grant.acl
    params["signature"] = _mac(secret, grant)
    return urlencode(params)


def make_grant(method: str, key: str, expires_s: int, content_type: str | None = None,
               public: bool = False, now: float | None = None) -> SignedGrant:
    expires = int((time.time() if now is None else now) + expires_s)
    return SignedGrant(method=method, key=key, expires=expires,
                       content_type=(content_type or "").strip(), acl=PUBLIC_READ if public else "")


def verify(secret: bytes, method: str, key: str, query: dict[str, str], now: float | None = None) -> SignedGrant:
    """Check a signed URL's query for `method` on `key`; raise ForbiddenError if it does not hold."""
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        raise ForbiddenError("the link is not signed: ask for a new pre-signed URL") from None
    grant = SignedGrant(method=method, key=key, expires=expires,
                        content_type=query.get("content_type", ""), acl=query.get("acl", ""))
    # compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500)
    if not hmac.compare_digest(_mac(secret, grant).encode(), query.get("signature", "").encode()):
        raise ForbiddenError("the link's signature does not match: it was altered or is for another file")
    if expires < (time.time() if now is None else now):
        raise ForbiddenError("the link has expired: ask for a new pre-signed URL")
    return grant
