"""Signing, one delivery attempt against a real loopback receiver, and the retry verdicts."""

from __future__ import annotations

import ipaddress

from standardwebhooks import Webhook as StandardWebhook

from loraforge.webhooks.delivery import AttemptResult, Next, attempt, retry_after_seconds, verdict
from loraforge.webhooks.signing import new_secret, sign_headers, verify

SCHEDULE = (0.0, 5.0, 300.0)


def test_a_signature_verifies_and_a_tampered_body_does_not() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"AVAILABLE"}'
    headers = sign_headers(secret, "msg_1", body)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(new_secret(), headers, body)
    StandardWebhook(secret).verify(body, headers)  # the reference implementation agrees


def test_a_stale_timestamp_fails_verification() -> None:
    secret = new_secret()
    headers = sign_headers(secret, "msg_1", b"{}", timestamp=1_000_000)
    assert not verify(secret, headers, b"{}")


def test_an_attempt_reports_the_status_and_a_retry_after(receiver) -> None:
    receiver.script = [(503, {"Retry-After": "7"})]
    secret = new_secret()
    result = attempt(receiver.url, secret, "msg_x", b'{"a":1}', allow_private=True, timeout_s=5)
    assert (result.status_code, result.error, result.retry_after_s) == (503, "HTTP 503", 7.0)
    got = receiver.requests[0]
    assert got.headers["webhook-id"] == "msg_x"
    StandardWebhook(secret).verify(got.body, got.headers)
    assert verdict(result, 1, SCHEDULE).delay_s == 7.0  # the receiver's Retry-After, not the schedule


def test_a_redirect_is_not_followed_and_names_the_final_url(receiver) -> None:
    receiver.script = [(308, {"Location": "http://127.0.0.1:9/final"})]
    result = attempt(receiver.url, new_secret(), "m", b"{}", allow_private=True, timeout_s=5)
    assert len(receiver.requests) == 1
    assert result.location == "http://127.0.0.1:9/final"
    assert result.error and "redirected to http://127.0.0.1:9/final; register the final URL" in result.error
    assert verdict(result, 1, SCHEDULE).next is Next.FAILED  # permanent: no retry
    temporary = AttemptResult(307, "HTTP 307", "http://127.0.0.1:9/x", None, 1)
    assert verdict(temporary, 1, SCHEDULE).next is Next.RETRY


def test_an_unreachable_or_refused_receiver_comes_back_as_an_error() -> None:
    dead = attempt("http://127.0.0.1:9/hook", new_secret(), "m", b"{}", allow_private=True, timeout_s=2)
    assert dead.status_code is None and "could not connect" in (dead.error or "")

    def metadata(host: str, port: int) -> list:
        return [ipaddress.ip_address("169.254.169.254")]

    refused = attempt("http://hooks.test/x", new_secret(), "m", b"{}", allow_private=True, timeout_s=2,
                      resolver=metadata)
    assert refused.status_code is None and "cloud metadata" in (refused.error or "")


def test_the_schedule_is_followed_with_jitter_then_exhausted() -> None:
    failed = AttemptResult(500, "HTTP 500", None, None, 1)
    first = verdict(failed, 1, SCHEDULE)
    assert first.next is Next.RETRY and 4.5 <= (first.delay_s or 0) <= 5.5
    assert 270 <= (verdict(failed, 2, SCHEDULE).delay_s or 0) <= 330
    assert verdict(failed, 3, SCHEDULE).next is Next.FAILED
    assert verdict(AttemptResult(410, "gone", None, None, 1), 1, SCHEDULE).next is Next.DISABLED
    assert verdict(AttemptResult(204, None, None, None, 1), 1, SCHEDULE).next is Next.DELIVERED


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None
