"""Delivery of one signed webhook message: POST, retry with backoff, honour Retry-After, stop on 410.

`deliver` knows nothing of the database: it reports every attempt to a callback (the dispatcher
writes it to the dispatch log) and returns how the delivery ended. The same `webhook-id` is sent on
every retry so a receiver that already processed a message can drop the duplicate. Redirects are
not followed, and the URL passes the SSRF guard before each attempt because DNS may change between
retries.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx

from loraforge.errors import UnsafeURLError
from loraforge.webhooks.signing import sign_headers

logger = logging.getLogger(__name__)

USER_AGENT = "loraforge-webhooks/1"


class Outcome(StrEnum):
    DELIVERED = "DELIVERED"
    DISABLED = "DISABLED"  # the receiver answered 410 Gone: stop sending to it
    GAVE_UP = "GAVE_UP"  # every attempt failed
    REFUSED = "REFUSED"  # the URL failed the SSRF guard


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 2.0  # doubles each retry: 2, 4, 8, ... capped by max_delay_s
    max_delay_s: float = 600.0
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Attempt:
    number: int
    status_code: int | None
    error: str | None
    duration_ms: int
    next_delay_s: float | None  # None when this was the last attempt


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP-date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def deliver(
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    policy: RetryPolicy,
    check_url: Callable[[str], None],
    on_attempt: Callable[[Attempt], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """POST `body` to `url` until a 2xx, a 410, or the policy's attempts run out."""
    with httpx.Client(timeout=policy.timeout_s, follow_redirects=False) as client:
        for number in range(1, policy.max_attempts + 1):
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                check_url(url)
            except UnsafeURLError as exc:
                _report(on_attempt, Attempt(number, None, exc.message, 0, None))
                return Outcome.REFUSED
            try:
                headers = {"content-type": "application/json", "user-agent": USER_AGENT}
                headers.update(sign_headers(secret, msg_id, body))
                response = client.post(url, content=body, headers=headers)
                status = response.status_code
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            except httpx.TimeoutException:
                error = f"timed out after {policy.timeout_s:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            duration_ms = int((time.monotonic() - started) * 1000)

            if status is not None and 200 <= status < 300:
                _report(on_attempt, Attempt(number, status, None, duration_ms, None))
                return Outcome.DELIVERED
            if status == 410:
                _report(on_attempt, Attempt(number, status, "410 Gone: webhook disabled", duration_ms, None))
                return Outcome.DISABLED
            if status is not None:
                error = f"HTTP {status}"
            delay: float | None = None
            if number < policy.max_attempts:
                backoff = policy.base_delay_s * (2 ** (number - 1))
                delay = min(policy.max_delay_s, retry_after if retry_after is not None else backoff)
            _report(on_attempt, Attempt(number, status, error, duration_ms, delay))
            logger.info("webhook %s to %s failed (attempt %d): %s", msg_id, url, number, error)
            if delay is None:
                break
            sleep(delay)
    return Outcome.GAVE_UP


def _report(on_attempt: Callable[[Attempt], None] | None, attempt: Attempt) -> None:
    if on_attempt is None:
        return
    try:
        on_attempt(attempt)
    except Exception:  # the log must never stop a delivery
        logger.exception("could not record webhook attempt %d", attempt.number)
