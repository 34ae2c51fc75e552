"""Signing and delivery against a real loopback receiver."""

from __future__ import annotations

import json

from loraforge.errors import UnsafeURLError
from loraforge.webhooks.delivery import Attempt, Outcome, RetryPolicy, deliver, retry_after_seconds
from loraforge.webhooks.signing import new_secret, sign_headers, verify

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=2.0, timeout_s=5.0)


def _allow(url: str) -> None:
    pass


def test_a_signature_verifies_and_a_tampered_body_does_not() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"AVAILABLE"}'
    headers = sign_headers(secret, "msg_1", body)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(new_secret(), headers, body)


def test_a_stale_timestamp_fails_verification() -> None:
    secret = new_secret()
    headers = sign_headers(secret, "msg_1", b"{}", timestamp=1_000_000)
    assert not verify(secret, headers, b"{}")


def test_a_receiver_failing_twice_gets_the_message_on_the_third_attempt(receiver) -> None:
    receiver.script = [(500, {}), (503, {"Retry-After": "1"})]
    attempts: list[Attempt] = []
    secret = new_secret()
    body = json.dumps({"type": "AVAILABLE"}).encode()
    slept: list[float] = []
    outcome = deliver(receiver.url, secret, "msg_x", body, policy=FAST, check_url=_allow,
                      on_attempt=attempts.append, sleep=slept.append)
    assert outcome is Outcome.DELIVERED
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert slept == [0.01, 1.0]  # backoff, then the receiver's Retry-After
    assert len(receiver.accepted()) == 1
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {"msg_x"}  # the same id on every retry, so receivers can de-duplicate
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)


def test_a_410_stops_delivery_and_reports_disabled(receiver) -> None:
    receiver.script = [(410, {})]
    attempts: list[Attempt] = []
    outcome = deliver(receiver.url, new_secret(), "m", b"{}", policy=FAST, check_url=_allow,
                      on_attempt=attempts.append, sleep=lambda s: None)
    assert outcome is Outcome.DISABLED
    assert len(attempts) == 1 and len(receiver.requests) == 1


def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    attempts: list[Attempt] = []
    outcome = deliver("http://127.0.0.1:9/hook", new_secret(), "m", b"{}", policy=FAST,
                      check_url=_allow, on_attempt=attempts.append, sleep=lambda s: None)
    assert outcome is Outcome.GAVE_UP
    assert len(attempts) == 4 and all(a.error for a in attempts)
    assert attempts[-1].next_delay_s is None


def test_a_url_refused_by_the_guard_is_never_contacted(receiver) -> None:
    def refuse(url: str) -> None:
        raise UnsafeURLError("webhook_url resolves to a loopback address")

    outcome = deliver(receiver.url, new_secret(), "m", b"{}", policy=FAST, check_url=refuse,
                      sleep=lambda s: None)
    assert outcome is Outcome.REFUSED
    assert receiver.requests == []


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None
