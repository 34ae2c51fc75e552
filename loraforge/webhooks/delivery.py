"""One delivery attempt of a signed webhook message, and what it means for the next one.

`attempt` POSTs the body through loraforge.net's GuardedClient (the URL's addresses checked and
pinned, no proxies, no redirects followed, one total deadline) with fresh Standard Webhooks
headers (the same `webhook-id` on every attempt, so receivers can drop duplicates). `verdict`
turns its result into what the outbox does next: done, retry after a delay (the schedule's,
jittered, or the receiver's Retry-After), stop for good (a permanent redirect), or disable the
webhook (410 Gone). A receiver that refuses a message often says why in its body (a 401 with a
JSON reason): the first RESPONSE_BODY_BYTES of a non-2xx answer come back as text, their URLs
redacted, for the dispatch log. Nothing here touches the database.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from enum import StrEnum

import httpx

from loraforge.errors import UnsafeURLError
from loraforge.net.client import GuardedClient, OutboundError
from loraforge.net.guard import Resolver, system_resolve
from loraforge.redaction import redact_urls
from loraforge.webhooks.signing import sign_headers

USER_AGENT = "loraforge-webhooks/1"
PERMANENT_REDIRECTS = {301, 308}
JITTER = 0.1  # each scheduled delay is stretched or shrunk by up to 10 %
MAX_RETRY_AFTER_S = 24 * 3600  # a receiver cannot park a message longer than a day
RESPONSE_BODY_BYTES = 1024  # enough for a receiver's reason; a whole error page is not worth keeping


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None  # None when the receiver answered 2xx
    location: str | None  # the Location of a 3xx
    retry_after_s: float | None
    duration_ms: int
    response_body: str | None = None  # the start of a non-2xx answer's body, as text, redacted


class Next(StrEnum):
    DELIVERED = "DELIVERED"
    RETRY = "RETRY"
    FAILED = "FAILED"  # retries spent, or a redirect that will not change
    DISABLED = "DISABLED"  # the receiver answered 410 Gone


@dataclass(frozen=True)
class Verdict:
    next: Next
    delay_s: float | None = None  # for RETRY: seconds until the next attempt


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP-date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone passes '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def body_start(response: httpx.Response, limit: int = RESPONSE_BODY_BYTES) -> str | None:
    """The first `limit` bytes of a streamed response's body as text (invalid UTF-8 replaced, URLs
    redacted, control characters but newlines and tabs as spaces); None when empty or unreadable."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass  # what came before the failure is still worth keeping
    text = data[:limit].decode("utf-8", errors="replace").rstrip("\ufffd")
    text = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text).strip()
    return redact_urls(text) or None


def attempt(url: str, secret: str, msg_id: str, body: bytes, *, allow_private: bool, timeout_s: float,
            resolver: Resolver = system_resolve) -> AttemptResult:
    """POST `body` to `url` once; every failure comes back as an error string, never raised."""
    started = time.monotonic()
    status: int | None = None
    location = retry_after = None
    error: str | None = None
    answer: str | None = None
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, **sign_headers(secret, msg_id, body)}
    try:
        with GuardedClient(allow_private=allow_private, timeout_s=timeout_s, deadline_s=timeout_s,
                           resolver=resolver) as client, \
                client.open("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            location = response.headers.get("location")
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if not response.is_success:
                answer = body_start(response)
    except (UnsafeURLError, OutboundError) as exc:
        error = exc.message
    except httpx.TimeoutException:
        error = f"timed out after {timeout_s:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - started) * 1000)
    if status is not None and not 200 <= status < 300:
        error = _status_error(status, location)
    return AttemptResult(status, error, location if status and 300 <= status < 400 else None, retry_after,
                         duration_ms, answer)


def _status_error(status: int, location: str | None) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: the receiver redirected to {location or '(no Location)'}; register the final URL"
    if status == 410:
        return "HTTP 410 Gone: the receiver asked to stop; the webhook is disabled"
    return f"HTTP {status}"


def verdict(result: AttemptResult, attempts_done: int, schedule: tuple[float, ...]) -> Verdict:
    """What follows attempt number `attempts_done` (1-based) under `schedule` (delays before each)."""
    if result.error is None:
        return Verdict(Next.DELIVERED)
    if result.status_code == 410:
        return Verdict(Next.DISABLED)
    if result.status_code in PERMANENT_REDIRECTS or attempts_done >= len(schedule):
        return Verdict(Next.FAILED)
    if result.retry_after_s is not None:
        return Verdict(Next.RETRY, min(result.retry_after_s, MAX_RETRY_AFTER_S))
    delay = schedule[attempts_done]
    return Verdict(Next.RETRY, delay * random.uniform(1 - JITTER, 1 + JITTER))
