"""Jobs that cannot finish end in a status with a reason, and cancel stops a training job in seconds.

Embedded worker, through HTTP, on every database x storage combination, tiny models.
"""

from __future__ import annotations

from tests.e2e.flow import TERMINAL, image_zip, not_images_zip, pipeline_settings, submit_body, wait_for
from tests.e2e.pipeline_http import details, submit, upload


def test_a_zip_without_usable_images_ends_failed_with_a_reason(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    job_id = submit(api, submit_body(upload(api, not_images_zip())))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "FAILED"
    assert "image" in job["error_message"].lower()
    assert [e["status"] for e in job["events"]] == ["REQUESTED", "DATA_PROCESSING", "FAILED"]


def test_cancel_stops_a_training_job_within_seconds(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, checkpoint_every=1000))
    job_id = submit(api, submit_body(upload(api, image_zip()), steps=5000))
    wait_for(lambda: details(api, job_id), lambda d: (d.get("progress") or {}).get("step", 0) >= 1
             or d["status"] in TERMINAL)
    r = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=10)
    assert job["status"] == "CANCELLED"
    again = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert again.status_code == 409 and "CANCELLED" in again.json()["error"]
