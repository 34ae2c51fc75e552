"""The outbox's delivery rules through HTTP: redirects, Retry-After, 410, failing streaks, bounded threads.

Each test runs on SQLite and on PostgreSQL (local disk storage: the store plays no part here).
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime

import pytest

from tests.support.flow import wait_for

pytestmark = pytest.mark.backends("database")  # database behaviour is under test

FAST = {"allow_private_urls": True, "webhook_poll_s": 0.1}


@pytest.fixture
def storage_kind() -> str:
    return "local"


def _add(api, url: str, key: str | None = None) -> dict:
    r = api.client.post("/webhook/add", json={"webhook_url": url}, headers=api.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


def _log(api, webhook_id: str) -> dict:
    r = api.client.get("/webhook/dispatch-logs", params={"webhook_id": webhook_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()


def _hook(api, webhook_id: str) -> dict:
    hooks = api.client.get("/webhook/get", headers=api.headers()).json()["webhooks"]
    return next(h for h in hooks if h["webhook_id"] == webhook_id)


def test_a_permanent_redirect_gets_one_attempt_and_the_log_says_where_to(make_app_client, receiver) -> None:
    api = make_app_client(**FAST, webhook_retry_schedule="0,0.05,0.05")
    hook = _add(api, receiver.url)
    receiver.script = [(308, {"Location": "http://127.0.0.1:9/final-hook"})]
    sent = api.client.post("/webhook/test", json={}, headers=api.headers()).json()
    assert sent["outcome"] == "FAILED"
    log = _log(api, hook["webhook_id"])
    (message,) = log["messages"]
    assert (message["state"], message["attempts"], message["last_status_code"]) == ("FAILED", 1, 308)
    (attempt,) = log["logs"]
    assert attempt["location"] == "http://127.0.0.1:9/final-hook"
    assert "the receiver redirected to http://127.0.0.1:9/final-hook; register the final URL" in attempt["error"]
    threading.Event().wait(0.5)  # time for retries that must not happen
    assert len(receiver.requests) == 1


def test_retry_after_sets_the_next_attempt(make_app_client, receiver) -> None:
    api = make_app_client(**FAST, webhook_retry_schedule="0,0.05,0.05")
    hook = _add(api, receiver.url)
    receiver.script = [(503, {"Retry-After": "2"})]
    sent = api.client.post("/webhook/test", json={}, headers=api.headers()).json()
    assert sent["outcome"] == "RETRYING"
    (pending,) = _log(api, hook["webhook_id"])["messages"]
    assert pending["state"] == "PENDING" and pending["last_error"] == "HTTP 503"
    delay = (datetime.fromisoformat(pending["next_attempt_at"]) -
             datetime.fromisoformat(_log(api, hook["webhook_id"])["logs"][0]["timestamp"])).total_seconds()
    assert 1.5 < delay < 2.5, delay  # the receiver's 2 s, not the schedule's 0.05 s
    wait_for(lambda: {"n": len(receiver.accepted())}, lambda d: d["n"] == 1, 10)
    first, second = receiver.requests
    assert second.at - first.at >= 1.8
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_410_disables_the_webhook_and_get_says_why(make_app_client, receiver) -> None:
    api = make_app_client(**FAST)
    hook = _add(api, receiver.url)
    receiver.script = [(410, {})]
    assert api.client.post("/webhook/test", json={}, headers=api.headers()).json()["outcome"] == "DISABLED"
    got = _hook(api, hook["webhook_id"])
    assert got["active"] is False and "410 Gone" in got["disabled_reason"]
    assert len(receiver.requests) == 1


def test_a_webhook_failing_for_the_whole_window_is_disabled_with_a_reason(make_app_client, receiver) -> None:
    # Five days in production; one second here (LORAFORGE_WEBHOOK_DISABLE_AFTER_S).
    api = make_app_client(**FAST, webhook_retry_schedule="0,1.2,60", webhook_disable_after_s=1)
    hook = _add(api, receiver.url)
    receiver.default = (500, {})
    api.client.post("/webhook/test", json={}, headers=api.headers())
    api.client.post("/webhook/test", json={}, headers=api.headers())
    got = wait_for(lambda: _hook(api, hook["webhook_id"]), lambda h: not h["active"], 10, "disable")
    assert "every delivery failed from" in got["disabled_reason"] and "HTTP 500" in got["disabled_reason"]
    states = sorted(m["state"] for m in _log(api, hook["webhook_id"])["messages"])
    assert "PENDING" not in states and "DROPPED" in states


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # threads do not depend on the database
def test_webhook_cycles_leave_no_threads_behind(make_app_client, receiver) -> None:
    api = make_app_client(**FAST)
    before = 0
    for cycle in range(100):
        hook = _add(api, receiver.url)
        sent = api.client.post("/webhook/test", json={}, headers=api.headers())
        assert sent.json()["outcome"] == "DELIVERED", sent.text
        off = api.client.get("/webhook/inactive", params={"webhook_id": hook["webhook_id"]}, headers=api.headers())
        assert off.status_code == 200
        if cycle == 0:
            before = threading.active_count()  # the pools have started their first threads
    assert len(receiver.accepted()) == 100
    assert threading.active_count() - before <= api.settings.webhook_senders, threading.enumerate()


def test_a_hanging_receiver_does_not_delay_another_users_messages(make_app_client, receiver) -> None:
    # Two senders in all; the hanging receiver's five messages may hold only one of them.
    api = make_app_client(**FAST, webhook_senders=2, webhook_timeout_s=3, webhook_retry_schedule="0,30")
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)  # the kernel accepts the connections; nobody ever answers
    other = api.new_key("hanging")
    _add(api, f"http://127.0.0.1:{hanging.getsockname()[1]}/hook", other)
    _add(api, receiver.url)

    def send_to_hanging() -> None:
        api.client.post("/webhook/test", json={}, headers=api.headers(other))

    senders = [threading.Thread(target=send_to_hanging) for _ in range(5)]
    try:
        for thread in senders:
            thread.start()
        time.sleep(0.5)  # their attempts are in flight
        started = time.monotonic()
        sent = api.client.post("/webhook/test", json={}, headers=api.headers())
        assert sent.json()["outcome"] == "DELIVERED"
        assert time.monotonic() - started < 2.5  # less than one attempt's deadline at the hanging receiver
    finally:
        for thread in senders:
            thread.join(15)
        hanging.close()
