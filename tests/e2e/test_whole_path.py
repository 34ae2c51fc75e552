"""The whole path through HTTP with the embedded worker: upload -> submit -> AVAILABLE -> download -> generate.

Covers each database, store and base model kind on the tiny models, with a webhook receiver on
loopback that verifies every signature.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from PIL import Image
from safetensors.torch import load as load_safetensors

from loraforge.webhooks.signing import verify
from tests.support.flow import (
    HAPPY,
    TERMINAL,
    image_zip,
    pipeline_settings,
    status_path,
    submit_body,
    wait_for,
)
from tests.support.pipeline_http import details, fetch, submit, upload


# Each database, store and model kind once: three jobs rather than the 12 of the full product.
@pytest.mark.parametrize(
    ("database_url", "storage_kind", "base_model"),
    [("sqlite", "local", "FAST_FLUX"), ("postgresql", "s3", "FLUX"), ("sqlite", "s3", "QWEN")],
    indirect=["database_url", "storage_kind"],
)
def test_an_uploaded_dataset_becomes_a_downloadable_generating_model(make_app_client, tiny_models, receiver,
                                                                     base_model) -> None:
    api = make_app_client(**pipeline_settings(tiny_models))
    hook = api.client.post("/webhook/add", json={"webhook_url": receiver.url}, headers=api.headers())
    assert hook.status_code == 200, hook.text
    secret = hook.json()["secret"]

    job_id = submit(api, submit_body(upload(api, image_zip()), base_model=base_model))
    job = wait_for(lambda: details(api, job_id), lambda d: d["status"] in TERMINAL)
    assert job["status"] == "AVAILABLE", job["error_message"]
    assert status_path(job["events"]) == HAPPY
    assert job["progress"]["step"] == job["progress"]["total_steps"] == 4

    # The LoRA: file/download works for every model; FAST_FLUX's URL is itself a key-less link.
    link = api.client.request("GET", "/finetune/request/file/download",
                              data={"cloud_storage_url": job["cloud_storage_url"]}, headers=api.headers())
    assert link.status_code == 200, link.text
    lora = fetch(api, link.text)
    assert load_safetensors(lora)  # a real safetensors file with tensors in it
    assert hashlib.sha256(lora).hexdigest() == job["model_information"]["sha256"]
    if base_model == "FAST_FLUX":
        assert fetch(api, job["cloud_storage_url"]) == lora

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


