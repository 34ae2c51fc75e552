"""`POST /v1/{slug}` through HTTP on every database x storage backend, with tiny models."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from loraforge.db.accounts import user_id_for_key
from loraforge.db.models import FineTuneJob
from loraforge.inference.deploy import deploy
from loraforge.training.tiny import TINY_NAMES
from tests.fixtures.apps import ApiClient, AppFactory, app_on_sqlite
from tests.support.loras import LoraWriter

SMALL = {"prompt": "a photo of a cat", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 5}


@pytest.fixture
def api(make_app_client: AppFactory, tiny_models: Path) -> ApiClient:
    return make_app_client(
        model_flux=str(tiny_models / TINY_NAMES["flux"]), model_qwen=str(tiny_models / TINY_NAMES["qwen"])
    )


def add_model(api: ApiClient, lora: Path | None, *, key: str | None = None, base_model: str = "FLUX",
              status: str = "AVAILABLE", public: bool = False) -> str:
    """A job row as the pipeline leaves it, its LoRA in the store; returns the slug."""
    job_id = str(uuid.uuid4())
    slug = f"model-{job_id[:8]}"
    url = None
    if lora is not None:
        url = api.app.state.services.store.object_url(f"models/{job_id}/{slug}.safetensors")
        api.app.state.services.store.put_file(f"models/{job_id}/{slug}.safetensors", lora)
    with api.app.state.services.sessions() as session:
        session.add(FineTuneJob(
            id=job_id, user_id=user_id_for_key(session, key or api.key), name=slug,
            data_source_path="https://example.com/data.zip", instance_prompt="a photo of sks",
            trigger_word="sks", base_model=base_model, machine_type="NVIDIA_H100", train_type="LORA",
            segmind_public=public, status=status, slug=slug, cloud_storage_url=url, source_type="AWS_S3",
            advance_parameters={}, model_information={},
        ))
        session.commit()
    return slug


def job_id_of(api: ApiClient, slug: str) -> str:
    with api.app.state.services.sessions() as session:
        return session.scalar(select(FineTuneJob.id).where(FineTuneJob.slug == slug))


def post(api: ApiClient, slug: str, key: str | None = None, **fields: object):  # -> httpx.Response
    return api.client.post(f"/v1/{slug}", json=SMALL | fields, headers=api.headers(key))


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.backends("storage")
def test_a_deployed_model_answers_a_decodable_image_and_the_same_seed_gives_the_same_image(
    api: ApiClient, lora_writer: LoraWriter
) -> None:
    lora = lora_writer("flux", 1)
    slug = add_model(api, lora)
    deploy(api.app.state.services.generation.runner.get(), base_model="FLUX", lora_path=lora, slug=slug)  # as the job pipeline does
    details = api.client.get("/finetune/request/details", params={"request_id": job_id_of(api, slug)},
                             headers=api.headers()).json()["finetune"]
    assert details["inference_api_url"] == f"http://testserver/v1/{slug}"
    first = api.client.post(details["inference_api_url"], json=SMALL | {"width": 96, "height": 64},
                            headers=api.headers())
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.headers["x-seed"] == "5"
    with Image.open(io.BytesIO(first.content)) as image:
        assert (image.format, image.size) == ("PNG", (96, 64))
    again = post(api, slug, width=96, height=64)
    assert again.content == first.content
    as_json = post(api, slug, width=96, height=64, image_format="jpeg", base64=True)
    assert as_json.headers["content-type"] == "application/json"
    jpeg = base64.b64decode(as_json.json()["image"])
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.size) == ("JPEG", (96, 64))
    unseeded = api.client.post(f"/v1/{slug}", json={"prompt": "a cat", "width": 64, "height": 64,
                                                     "num_inference_steps": 2}, headers=api.headers())
    assert unseeded.status_code == 200 and unseeded.headers["x-seed"].isdigit()
    # The stored copy has the deployed file's content: the warm adapter served every request.
    runner = api.app.state.services.generation.runner.current
    assert (runner.base_loads, runner.lora_loads) == (1, 1)


def test_lora_strength_changes_the_image_and_two_loras_alternate_without_reloading_the_base(
    api: ApiClient, lora_writer: LoraWriter
) -> None:
    first, second = add_model(api, lora_writer("flux", 1)), add_model(api, lora_writer("flux", 2))
    images = [decode(post(api, slug).content) for slug in (first, second, first, second)]
    off = decode(post(api, first, lora_strength=0.0).content)
    runner = api.app.state.services.generation.runner.current
    assert (runner.base_loads, runner.lora_loads) == (1, 2)
    assert np.array_equal(images[0], images[2]) and np.array_equal(images[1], images[3])
    assert np.abs(images[0] - images[1]).max() > 0
    assert np.abs(images[0] - off).max() > 0


def test_a_private_model_needs_its_owners_key_and_a_public_one_accepts_any_key(
    api: ApiClient, lora_writer: LoraWriter
) -> None:
    lora = lora_writer("qwen", 1)
    private = add_model(api, lora, base_model="QWEN")
    public = add_model(api, lora, base_model="QWEN", public=True)
    stranger = api.new_key("stranger")
    assert post(api, private).status_code == 200
    refused = post(api, private, key=stranger)
    assert refused.status_code == 404, "another key's private model answers like a missing one"
    assert refused.json() == {"error": f"no model with slug {private!r} for this API key"}
    assert post(api, public, key=stranger).status_code == 200
    assert post(api, public, key="lf_not-a-key").status_code == 401


def test_an_unknown_slug_is_404_and_a_model_not_yet_available_is_409_naming_its_status(
    api: ApiClient
) -> None:
    missing = post(api, "no-such-model")
    assert missing.status_code == 404 and missing.json() == {"error": "no model with slug 'no-such-model' for this API key"}
    training = add_model(api, None, status="TRAINING_INITIATED")
    busy = post(api, training)
    assert busy.status_code == 409
    assert busy.json()["error"] == f"model {training!r} is not available: its status is TRAINING_INITIATED"
    details = api.client.get("/finetune/request/details", params={"request_id": job_id_of(api, training)},
                             headers=api.headers()).json()["finetune"]
    assert details["inference_api_url"] is None


@pytest.fixture(scope="module")
def refusing_api(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    """One app for the module's refused generations (none of which loads a model)."""
    with app_on_sqlite(tmp_path_factory, model_flux=str(tiny_models / TINY_NAMES["flux"]),
                       model_qwen=str(tiny_models / TINY_NAMES["qwen"])) as api:
        yield api


@pytest.fixture(scope="module")
def refusing_slug(refusing_api: ApiClient, lora_writer: LoraWriter) -> str:
    return add_model(refusing_api, lora_writer("flux", 1))


def _no_model_loaded(api: ApiClient) -> None:
    runner = api.app.state.services.generation.runner.current
    assert runner is None or runner.base_loads == 0  # refused before any model was loaded


@pytest.mark.parametrize(("field", "change"), [
    ("width", {"width": 100}),
    ("height", {"height": 4096}),
    ("num_inference_steps", {"num_inference_steps": 1000}),
    ("num_inference_steps", {"num_inference_steps": 1}),
    ("prompt", {"prompt": "   "}),
    ("seed", {"seed": "7"}),
    ("lora_strength", {"lora_strength": 5}),
    ("image_format", {"image_format": "gif"}),
    ("base64", {"base64": "yes"}),
], ids=["width", "height", "steps-high", "steps-low", "prompt", "seed", "lora_strength", "image_format", "base64"])
def test_bad_parameters_are_400_with_an_error_naming_the_field(refusing_api: ApiClient, refusing_slug: str,
                                                               field: str, change: dict[str, object]) -> None:
    answer = post(refusing_api, refusing_slug, **change)
    assert answer.status_code == 400, (field, answer.text)
    assert answer.json()["error"].startswith(f"{field}: "), answer.json()
    _no_model_loaded(refusing_api)


def test_bodies_that_are_not_a_json_object_of_parameters_are_400(refusing_api: ApiClient, refusing_slug: str) -> None:
    api, slug = refusing_api, refusing_slug
    no_prompt = api.client.post(f"/v1/{slug}", json={"width": 64}, headers=api.headers())
    assert (no_prompt.status_code, no_prompt.json()) == (400, {"error": "prompt: is required"})
    not_json = api.client.post(f"/v1/{slug}", content=b"{prompt", headers=api.headers())
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    form = api.client.post(f"/v1/{slug}", files={"prompt": (None, "a cat")}, headers=api.headers())
    assert form.status_code == 400 and "not multipart/form-data form fields" in form.json()["error"], form.text
    json_as_form = api.client.post(f"/v1/{slug}", content=b'{"prompt": "a cat", "width": 100}',  # curl -d
                                   headers=api.headers() | {"content-type": "application/x-www-form-urlencoded"})
    assert json_as_form.json()["error"].startswith("width: "), json_as_form.text
    _no_model_loaded(api)


@pytest.mark.backends("storage")
def test_a_model_file_that_differs_from_its_recorded_sha256_is_refused(
    api: ApiClient, lora_writer: LoraWriter
) -> None:
    slug = add_model(api, lora_writer("flux", 1))
    with api.app.state.services.sessions() as session:
        job = session.scalar(select(FineTuneJob).where(FineTuneJob.slug == slug))
        job.model_information = {"sha256": "0" * 64}
        session.commit()
    answer = post(api, slug)
    assert answer.status_code == 502
    assert answer.json()["error"].startswith(f"the model file models/{job.id}/{slug}.safetensors is corrupt")


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_generations_in_flight_are_capped_per_key(make_app_client: AppFactory, tiny_models: Path,
                                                   lora_writer: LoraWriter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = make_app_client(model_flux=str(tiny_models / TINY_NAMES["flux"]), quota_generations=1)
    slug = add_model(api, lora_writer("flux", 3), public=True)
    with ThreadPoolExecutor(1) as pool:
        # the first generation builds the base pipeline: seconds, in flight all along
        first = pool.submit(post, api, slug, num_inference_steps=8)
        time.sleep(0.5)
        second = post(api, slug)
        assert second.status_code == 429, second.text
        assert second.json()["quota"] == "generations" and int(second.headers["retry-after"]) > 0
        assert post(api, slug, key=api.new_key("other")).status_code == 200, "another key is unaffected"
        assert first.result(timeout=300).status_code == 200
    assert post(api, slug).status_code == 200, "the slot is free again"
