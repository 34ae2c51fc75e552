"""`POST /v1/{slug}` and `POST /v2/{slug}` share one path (loraforge.inference.serving.generate_for).

Through HTTP on one backend with the tiny FLUX: both routes hold the same per-key `generations`
slots and the same generation queue, so a /v1 request in flight makes the key's /v2 request a 429
naming the quota, and a full queue is a 503 with `Retry-After` on /v2 as on /v1.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from loraforge.db.accounts import user_id_for_key
from loraforge.db.models import FineTuneJob
from loraforge.training.tiny import TINY_NAMES
from tests.fixtures.apps import ApiClient, AppFactory
from tests.support.loras import write_random_lora

ONE_BACKEND = pytest.mark.parametrize(("database_url", "storage_kind"), [("sqlite", "local")], indirect=True)
SMALL = {"prompt": "a photo of a cat", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 5}


def public_model(api: ApiClient, lora: Path) -> str:
    """An AVAILABLE public FLUX job with `lora` stored, as the pipeline leaves it; returns its slug."""
    job_id = str(uuid.uuid4())
    slug = f"model-{job_id[:8]}"
    key = f"models/{job_id}/{slug}.safetensors"
    api.app.state.services.store.put_file(key, lora)
    with api.app.state.services.sessions() as session:
        session.add(FineTuneJob(
            id=job_id, user_id=user_id_for_key(session, api.key), name=slug,
            data_source_path="https://example.com/data.zip", instance_prompt="a photo of sks", trigger_word="sks",
            base_model="FLUX", machine_type="NVIDIA_H100", train_type="LORA", segmind_public=True,
            status="AVAILABLE", slug=slug, cloud_storage_url=api.app.state.services.store.object_url(key),
            source_type="AWS_S3", advance_parameters={}, model_information={},
        ))
        session.commit()
    return slug


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@ONE_BACKEND
def test_v1_and_v2_share_the_keys_quota_and_the_generation_queue(
    make_app_client: AppFactory, tiny_models: Path, tmp_path: Path
) -> None:
    api = make_app_client(model_flux=str(tiny_models / TINY_NAMES["flux"]), quota_generations=1,
                          inference_queue_size=1)
    slug = public_model(api, write_random_lora(tiny_models / TINY_NAMES["flux"], "flux", 1, tmp_path / "lora"))
    queue = api.app.state.services.generation.queue
    second_key, third_key = api.new_key("second"), api.new_key("third")

    def post(route: str, key: str | None = None, **fields: object):  # -> httpx.Response
        return api.client.post(f"/{route}/{slug}", json=SMALL | fields, headers=api.headers(key))

    with ThreadPoolExecutor(2) as pool:
        # The first generation loads the base pipeline: seconds in flight.
        running = pool.submit(post, "v1", num_inference_steps=8)
        wait_until(lambda: queue.in_flight() == 1 and queue.depth() == 0, "the first generation to run")
        over_quota = post("v2")
        assert over_quota.status_code == 429, over_quota.text
        assert over_quota.json()["quota"] == "generations" and int(over_quota.headers["retry-after"]) > 0

        waiting = pool.submit(post, "v1", second_key)
        wait_until(lambda: queue.depth() == 1, "the second generation to wait")
        full = post("v2", third_key)
        assert full.status_code == 503, full.text
        assert "queue is full" in full.json()["error"] and int(full.headers["retry-after"]) >= 1
        assert running.result(timeout=300).status_code == 200
        assert waiting.result(timeout=300).status_code == 200

    answer = post("v2", third_key)
    assert answer.status_code == 200, answer.text
    status = api.client.get(answer.json()["status_url"], headers=api.headers(third_key))
    assert status.json()["status"] == "COMPLETED"
    output = api.client.get(answer.json()["response_url"], headers=api.headers(third_key)).json()["output"]
    with Image.open(io.BytesIO(base64.b64decode(output["image"]))) as image:
        assert image.size == (64, 64)
