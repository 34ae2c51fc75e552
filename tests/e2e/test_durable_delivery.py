"""Nothing lost in delivery, with real processes: webhooks across a kill -9, two dispatchers, and a
dataset replaced after submit. (A broker that is down at submit: tests/e2e/test_crash_and_fleet.py.)
"""

from __future__ import annotations

import collections
import json

import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.fixtures.receiver import start_receiver
from tests.support.flow import TERMINAL, image_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit
from tests.support.processes import API_KEY, Client, Process, free_port, service_env, wait_healthy

DEFAULT_EVENTS = ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE"]
# ~55 s of retries: the receiver stays down through a kill -9 and a restart.
PATIENT_SCHEDULE = ",".join(["0", "1", "2"] + ["3"] * 17)
MESSAGES = 16


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loraforge.db'}"
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def postgres_url():
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


def _add_webhook(api: Client, url: str) -> dict:
    r = api.http.post("/webhook/add", json={"webhook_url": url})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _wait_settled(api: Client, webhook_id: str, count: int) -> None:
    """Until the webhook has `count` messages and none is PENDING (due or claimed), all DELIVERED:
    no dispatcher sends a settled message again, so what the receiver got by then is final."""
    def messages() -> dict:
        r = api.http.get("/webhook/dispatch-logs", params={"webhook_id": webhook_id})
        assert r.status_code == 200, r.text
        return {"states": [m["state"] for m in r.json()["messages"]]}

    settled = wait_for(messages, lambda d: len(d["states"]) >= count and "PENDING" not in d["states"], 60,
                       "the messages to settle")
    assert settled["states"] == ["DELIVERED"] * count, settled


def test_events_survive_a_killed_server_and_a_receiver_that_was_down(tmp_path, tiny_models, db_url) -> None:
    port, hook_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    server = Process(["serve"], service_env(
        tmp_path, tiny_models, port, LORAFORGE_DATABASE_URL=db_url, LORAFORGE_WEBHOOK_POLL_S="0.2",
        LORAFORGE_WEBHOOK_RETRY_SCHEDULE=PATIENT_SCHEDULE, LORAFORGE_WEBHOOK_TIMEOUT_S="2"), tmp_path / "serve")
    stop_receiver = None
    try:
        server.start()
        wait_healthy(url, server)
        api = Client(url, API_KEY)
        hook = _add_webhook(api, f"http://127.0.0.1:{hook_port}/hook")  # nothing listens there yet
        job_id = api.submit(submit_body(api.upload(image_zip()), steps=2, sample_every=0))
        wait_for(lambda: api.details(job_id), lambda d: d["status"] in {*DEFAULT_EVENTS, *TERMINAL}, 180)
        server.kill9()

        server.start()
        wait_healthy(url, server)
        receiver, stop_receiver = start_receiver(hook_port)
        job = wait_for(lambda: api.details(job_id), lambda d: d["status"] in TERMINAL, 180)
        assert job["status"] == "AVAILABLE", (job["error_message"], server.tail())
        wait_for(lambda: {"n": len(receiver.accepted())}, lambda d: d["n"] >= 3, 60, "three webhooks")
        _wait_settled(api, hook["webhook_id"], 3)  # a duplicate would have been sent by now
        got = receiver.accepted()
        assert [json.loads(r.body)["type"] for r in got] == DEFAULT_EVENTS
        assert len({r.headers["webhook-id"] for r in got}) == 3
        for r in got:
            StandardWebhook(hook["secret"]).verify(r.body, r.headers)
            assert json.loads(r.body)["request_id"] == job_id
    finally:
        server.stop()
        if stop_receiver is not None:
            stop_receiver()


def test_two_dispatcher_processes_deliver_each_message_once(tmp_path, tiny_models, postgres_url, receiver) -> None:
    servers, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            servers.append(Process(["serve"], service_env(
                tmp_path / name, tiny_models, port, LORAFORGE_DATABASE_URL=postgres_url,
                LORAFORGE_EMBEDDED_WORKER="false", LORAFORGE_WEBHOOK_POLL_S="0.1",
                LORAFORGE_WEBHOOK_RETRY_SCHEDULE=",".join(["0"] + ["1"] * 19)), tmp_path / name).start())
            wait_healthy(urls[-1], servers[-1])
        clients = [Client(u, API_KEY) for u in urls]
        hook = _add_webhook(clients[0], receiver.url)
        receiver.default = (503, {"Retry-After": "1"})  # every first attempt fails: the messages pile up
        for i in range(MESSAGES):
            sent = clients[i % 2].http.post("/webhook/test", json={})
            assert sent.status_code == 200 and sent.json()["outcome"] == "RETRYING", sent.text
        receiver.default = (200, {})
        wait_for(lambda: {"n": len(receiver.accepted())}, lambda d: d["n"] >= MESSAGES, 60, "every delivery")
        _wait_settled(clients[1], hook["webhook_id"], MESSAGES)
        counts = collections.Counter(r.headers["webhook-id"] for r in receiver.accepted())
        assert len(counts) == MESSAGES and set(counts.values()) == {1}, counts
        for server in servers:  # both processes delivered some of them
            assert "DELIVERED" in "".join(p.read_text(errors="replace") for p in server.logs), server.tail()
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local"), ("postgresql", "s3")],
                         indirect=True)
def test_a_dataset_replaced_after_submit_ends_the_job_failed(make_app_client, tiny_models) -> None:
    submitter = make_app_client(**pipeline_settings(tiny_models, embedded_worker=False))
    r = submitter.client.request("GET", "/finetune/request/upload/pre-signed-url", json={"name": "photos"},
                                 headers=submitter.headers())
    link = r.json()
    assert submitter.put_presigned(link["presigned_url"], image_zip(seed=1)).status_code in (200, 204)
    job_id = submit(submitter, submit_body(link["s3_url"]))
    # The link is still valid: the file behind the submitted job is swapped before a worker takes it.
    assert submitter.put_presigned(link["presigned_url"], image_zip(seed=2)).status_code in (200, 204)

    worker = make_app_client(**pipeline_settings(tiny_models, storage_url=submitter.settings.storage_url))
    assert worker.settings.embedded_worker  # its start-up recovery takes the REQUESTED job
    job = wait_for(lambda: details(submitter, job_id), lambda d: d["status"] in TERMINAL, 120)
    assert job["status"] == "FAILED"
    assert "the dataset changed after submit" in job["error_message"]
