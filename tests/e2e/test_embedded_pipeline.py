"""The whole path through HTTP with the embedded worker: upload -> submit -> AVAILABLE -> download -> generate.

Runs on every database x storage combination of the shared fixtures, on the tiny models.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image
from safetensors.torch import load as load_safetensors

from loraforge.webhooks.signing import verify
from tests.e2e.flow import HAPPY, TERMINAL, image_zip, not_images_zip, pipeline_settings, submit_body, wait_for


def _details(api, job_id: str) -> dict:
    r = api.client.get("/finetune/request/details", params={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()["finetune"]


def _upload(api, data: bytes) -> str:
    r = api.client.request("GET", "/finetune/request/upload/pre-signed-url", json={"name": "photos"},
                           headers=api.headers())
    assert r.status_code == 200, r.text
    up = r.json()
    assert api.put_presigned(up["presigned_url"], data, {"Content-Type": "application/zip"}).status_code in (200, 204)
    return up["s3_url"]


def _submit(api, body: dict) -> str:
    r = api.client.post("/finetune/request/submit", json=body, headers=api.headers())
    assert r.status_code == 200, r.text
    return r.json()["request_id"]


def _fetch(api, link: str) -> bytes:
    if link.startswith(api.settings.public_url):
        r = api.client.get(link)
    else:
        r = httpx.get(link, timeout=30)
    assert r.status_code == 200, (link, r.text[:200])
    return r.content


@pytest.mark.parametrize("base_model", ["FLUX", "FAST_FLUX"])
def test_an_uploaded_dataset_becomes_a_downloadable_generating_model(make_app_client, tiny_models, receiver,
                                                                     base_model) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    hook = api.client.post("/webhook/add", json={"webhook_url": receiver.url}, headers=api.headers())
    assert hook.status_code == 200, hook.text
    secret = hook.json()["secret"]

    job_id = _submit(api, submit_body(_upload(api, image_zip()), base_model=base_model))
    job = wait_for(lambda: _details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "AVAILABLE", job["error_message"]
    assert [e["status"] for e in job["events"]] == HAPPY
    assert job["progress"]["step"] == job["progress"]["total_steps"] == 4

    # The LoRA: file/download works for every model; FAST_FLUX's URL is itself a key-less link.
    link = api.client.request("GET", "/finetune/request/file/download",
                              data={"cloud_storage_url": job["cloud_storage_url"]}, headers=api.headers())
    assert link.status_code == 200, link.text
    lora = _fetch(api, link.text)
    assert load_safetensors(lora)  # a real safetensors file with tensors in it
    assert hashlib.sha256(lora).hexdigest() == job["model_information"]["sha256"]
    if base_model == "FAST_FLUX":
        assert _fetch(api, job["cloud_storage_url"]) == lora

    image = api.client.post(f"/v1/{job['slug']}", headers=api.headers(),
                            json={"prompt": "a photo of TOK", "width": 64, "height": 64,
                                  "num_inference_steps": 2, "seed": 1})
    assert image.status_code == 200, image.text
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)

    wait_for(lambda: {"n": len(receiver.accepted())}, lambda d: d["n"] >= 3, 30, "webhooks")
    events = [json.loads(r.body) for r in receiver.accepted()]
    assert [e["type"] for e in events] == ["TRAINING_COMPLETED", "INFERENCE_QUEUED", "AVAILABLE"]
    assert all(verify(secret, r.headers, r.body) for r in receiver.accepted())
    assert events[0]["trained_model_url"] == job["cloud_storage_url"]
    assert events[-1]["inference_api_url"].endswith(f"/v1/{job['slug']}")


def test_a_zip_without_usable_images_ends_failed_with_a_reason(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    job_id = _submit(api, submit_body(_upload(api, not_images_zip())))
    job = wait_for(lambda: _details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "FAILED"
    assert "image" in job["error_message"].lower()
    assert [e["status"] for e in job["events"]] == ["REQUESTED", "DATA_PROCESSING", "FAILED"]


@pytest.fixture
def vanishing_file_server() -> Iterator[str]:
    """Answers the first HEAD with a Content-Length, then drops every connection: a host gone away."""
    seen = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802
            seen["n"] += 1
            if seen["n"] > 1:
                self.close_connection = True
                return
            self.send_response(200)
            self.send_header("content-length", "1000")
            self.send_header("content-type", "application/zip")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.zip"
    server.shutdown()
    server.server_close()


def test_a_url_that_stops_answering_ends_failed_with_a_reason(make_app_client, tiny_models,
                                                             vanishing_file_server) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    job_id = _submit(api, submit_body(vanishing_file_server))
    job = wait_for(lambda: _details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "FAILED"
    assert vanishing_file_server in job["error_message"] or "data.zip" in job["error_message"]


def test_cancel_stops_a_training_job_within_seconds(make_app_client, tiny_models) -> None:
    api = make_app_client(**pipeline_settings(tiny_models, checkpoint_every=1000))
    job_id = _submit(api, submit_body(_upload(api, image_zip()), steps=5000))
    wait_for(lambda: _details(api, job_id), lambda d: (d.get("progress") or {}).get("step", 0) >= 1
             or d["status"] in TERMINAL)
    r = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert r.status_code == 200, r.text
    job = wait_for(lambda: _details(api, job_id), lambda d: d["status"] in TERMINAL, timeout=10)
    assert job["status"] == "CANCELLED"
    again = api.client.post("/finetune/request/cancel", json={"request_id": job_id}, headers=api.headers())
    assert again.status_code == 409 and "CANCELLED" in again.json()["error"]
