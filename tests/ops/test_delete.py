"""POST /finetune/request/delete through HTTP: owner only, stops a running job, leaves nothing stored.

Embedded worker and tiny models, on PostgreSQL + SeaweedFS S3 (the README test deletes a finished
job on SQLite + local disk).
"""

from __future__ import annotations

import time

import pytest

from loraforge.storage.keys import job_prefixes
from tests.support.flow import TERMINAL, image_zip, pipeline_settings, submit_body, wait_for
from tests.support.pipeline_http import details, submit, upload

SHARED_BACKENDS = pytest.mark.parametrize(("database_url", "storage_kind"), [("postgresql", "s3")], indirect=True)


def stored(api, job_id: str) -> list[str]:
    return [key for prefix in job_prefixes(job_id) for key in api.app.state.services.store.list(prefix)]


def delete(api, job_id: str, key: str | None = None):  # -> httpx.Response
    return api.client.post("/finetune/request/delete", json={"request_id": job_id}, headers=api.headers(key))


@SHARED_BACKENDS
def test_delete_stops_a_running_job_and_removes_what_it_stored(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, checkpoint_every=2))
    store = api.app.state.services.store
    s3_url = upload(api, image_zip())
    upload_key = store.key_from_url(s3_url)
    running = submit(api, submit_body(s3_url, steps=5000))
    queued = submit(api, submit_body(s3_url, steps=5000))  # the same upload, waiting behind the first
    wait_for(lambda: details(api, running), lambda d: (d.get("progress") or {}).get("step", 0) >= 3
             or d["status"] in TERMINAL, timeout=120)
    wait_for(lambda: {"ok": bool(store.list(f"checkpoints/{running}/"))}, lambda d: d["ok"], timeout=60)
    assert stored(api, running), "a training job has stored its checkpoint and dataset report"

    stranger = api.new_key("stranger")
    refused = delete(api, running, stranger)
    assert refused.status_code == 404 and "request_id" in refused.json()["error"]
    assert details(api, running)["status"] not in TERMINAL, "another key's delete touched nothing"

    answer = delete(api, running)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"] is True and answer.json()["upload_kept"] is True
    gone = api.client.get("/finetune/request/details", params={"request_id": running}, headers=api.headers())
    assert gone.status_code == 404
    time.sleep(2)  # a stopped worker must not upload anything after the sweep
    assert stored(api, running) == []
    assert store.exists(upload_key), "the other job still trains on this upload"

    answer = delete(api, queued)
    assert answer.status_code == 200 and answer.json()["upload_kept"] is False
    assert not store.exists(upload_key), "the dataset upload goes with the last job using it"
    assert delete(api, queued).status_code == 404


@SHARED_BACKENDS
def test_delete_bodies_are_checked(app_client) -> None:
    bad = app_client.client.post("/finetune/request/delete", json={"request": "x"}, headers=app_client.headers())
    assert bad.status_code == 400
    assert bad.json()["error"] == "request: unknown field; did you mean request_id?"
    missing = app_client.client.post("/finetune/request/delete", json={}, headers=app_client.headers())
    assert missing.status_code == 400 and missing.json()["error"].startswith("request_id: is required")
    for path in ("/finetune/request/delete", "/finetune/request/cancel"):  # given, but not a string
        number = app_client.client.post(path, json={"request_id": 7}, headers=app_client.headers())
        assert number.status_code == 400, number.text
        assert number.json()["error"].startswith("request_id: must be a string"), number.text
    unknown = app_client.client.post("/finetune/request/delete", json={"request_id": "nope"},
                                     headers=app_client.headers())
    assert unknown.status_code == 404
