"""The webhook endpoints through HTTP: registration rules, test sends, retries, 410 and the SSRF guard."""

from __future__ import annotations

import json

import pytest

from loraforge.webhooks.signing import verify
from tests.support.flow import wait_for

FAST = {"allow_private_urls": True, "webhook_retry_schedule": "0,0.05,0.05,0.1", "webhook_poll_s": 0.1}


def _add(api, url: str, types: list[str] | None = None):
    body: dict = {"webhook_url": url}
    if types is not None:
        body["event"] = {"types": types}
    return api.client.post("/webhook/add", json=body, headers=api.headers())


def _logs(api, webhook_id: str) -> list[dict]:
    r = api.client.get("/webhook/dispatch-logs", params={"webhook_id": webhook_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["logs"]))


@pytest.mark.backends("database")
def test_a_user_has_one_active_webhook_and_can_replace_it(make_app_client, receiver) -> None:
    api = make_app_client(**FAST)
    first = _add(api, receiver.url)
    assert first.status_code == 200, first.text
    hook = first.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["event"]["types"] == ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE", "FAILED", "CANCELLED"]

    second = _add(api, receiver.url)
    assert second.status_code == 409 and "update" in second.json()["error"]

    updated = api.client.post("/webhook/update", headers=api.headers(), json={
        "webhook_id": hook["webhook_id"], "webhook_url": receiver.url + "/v2", "event": {"types": ["FAILED"]}})
    assert updated.status_code == 200 and updated.json()["event"]["types"] == ["FAILED"]

    off = api.client.get("/webhook/inactive", params={"webhook_id": hook["webhook_id"]}, headers=api.headers())
    assert off.status_code == 200 and off.json()["active"] is False
    assert _add(api, receiver.url).status_code == 200
    listed = api.client.get("/webhook/get", headers=api.headers()).json()["webhooks"]
    assert [h["active"] for h in listed] == [False, True]

    other = api.new_key()
    hidden = api.client.get("/webhook/dispatch-logs", params={"webhook_id": hook["webhook_id"]},
                            headers=api.headers(other))
    assert hidden.status_code == 404
    assert hidden.json()["error"] == f"webhook_id: no webhook {hook['webhook_id']!r} for this API key"


def test_bad_webhook_requests_get_a_4xx_naming_the_field(make_app_client) -> None:
    api = make_app_client(**FAST)
    assert "webhook_url" in _add(api, "ftp://127.0.0.1/x").json()["error"]
    bad_type = _add(api, "http://127.0.0.1:9/x", ["NOT_A_STATUS"])
    assert bad_type.status_code == 400 and "event.types" in bad_type.json()["error"]
    missing = api.client.get("/webhook/inactive", params={"webhook_id": "nope"}, headers=api.headers())
    assert missing.status_code == 404 and missing.json()["error"] == "webhook_id: no webhook 'nope' for this API key"
    number = api.client.post("/webhook/update", json={"webhook_id": 5}, headers=api.headers())
    assert number.status_code == 400 and number.json()["error"].startswith("webhook_id: must be a string"), number.text
    absent = api.client.post("/webhook/update", json={"event": {"types": ["FAILED"]}}, headers=api.headers())
    assert absent.status_code == 400 and absent.json()["error"].startswith("webhook_id: is required"), absent.text


def test_webhook_urls_on_private_addresses_are_refused_by_default(make_app_client) -> None:
    api = make_app_client()
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/"):
        r = _add(api, url)
        assert r.status_code == 400, r.text
        assert "refusing" in r.json()["error"]


@pytest.mark.backends("database")
def test_a_receiver_failing_twice_gets_the_event_once_and_every_attempt_is_logged(make_app_client,
                                                                                 receiver) -> None:
    api = make_app_client(**FAST)
    hook = _add(api, receiver.url).json()
    receiver.script = [(500, {}), (503, {"Retry-After": "0"})]
    sent = api.client.post("/webhook/test", json={}, headers=api.headers())
    assert sent.status_code == 200, sent.text
    assert sent.json()["outcome"] == "RETRYING"  # the first attempt failed; the outbox goes on
    wait_for(lambda: {"n": len(receiver.accepted())}, lambda d: d["n"] == 1, 10)
    got = receiver.accepted()[0]
    assert verify(hook["secret"], got.headers, got.body)
    assert json.loads(got.body)["type"] == "TEST"
    logs = wait_for(lambda: {"l": _logs(api, hook["webhook_id"])}, lambda d: len(d["l"]) == 3, 10)["l"]
    assert [entry["status_code"] for entry in logs] == [500, 503, 200]
    assert {entry["message_id"] for entry in logs} == {sent.json()["message_id"]}


@pytest.mark.backends("database")
def test_a_receiver_answering_410_gets_its_webhook_disabled(make_app_client, receiver) -> None:
    api = make_app_client(**FAST)
    hook = _add(api, receiver.url).json()
    receiver.script = [(410, {})]
    sent = api.client.post("/webhook/test", json={}, headers=api.headers())
    assert sent.json()["outcome"] == "DISABLED"
    listed = api.client.get("/webhook/get", headers=api.headers()).json()["webhooks"]
    assert [h["active"] for h in listed if h["webhook_id"] == hook["webhook_id"]] == [False]
    assert len(receiver.requests) == 1
