"""Submitting fine-tune requests through HTTP, shaped exactly as the seeds send them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.apps import ApiClient
from tests.support.seed_requests import BASE, FAST_FLUX_SUBMIT, QWEN_SUBMIT, submit_job, upload_dataset


@pytest.mark.parametrize("seed", [QWEN_SUBMIT, FAST_FLUX_SUBMIT], ids=["qwen", "fast_flux"])
def test_seed_submit_answers_requested_with_equal_ids(app_client: ApiClient, seed: dict[str, Any]) -> None:
    answer = submit_job(app_client, body=seed)
    assert answer["status"] == "REQUESTED"
    assert answer["request_id"] == answer["finetune_id"]
    assert answer["name"] == seed["name"]
    details = app_client.client.get(
        f"{BASE}/details", params={"request_id": answer["request_id"]}, headers=app_client.headers()
    ).json()["finetune"]
    assert details["status"] == "REQUESTED"
    assert details["base_model"] == seed["base_model"]
    assert details["train_type"] == "LORA"
    assert details["machine_type"] == "NVIDIA_H100"


@pytest.mark.backends("storage")
def test_submit_records_the_size_and_sha256_of_the_upload(app_client: ApiClient) -> None:
    import hashlib

    from loraforge.db.models import FineTuneJob, Upload
    from tests.support.seed_requests import tiny_zip

    answer = submit_job(app_client)
    with app_client.app.state.services.sessions() as session:
        job = session.get(FineTuneJob, answer["request_id"])
        assert job is not None and job.upload_id is not None
        upload = session.get(Upload, job.upload_id)
        assert upload is not None
        assert upload.size == len(tiny_zip())
        assert upload.sha256 == hashlib.sha256(tiny_zip()).hexdigest()


def test_submit_calls_the_on_submitted_hook_with_the_job_id(app_client: ApiClient) -> None:
    import dataclasses

    seen: list[str] = []
    services = app_client.app.state.services
    app_client.app.state.services = dataclasses.replace(services, on_submitted=seen.append)
    answer = submit_job(app_client)
    assert seen == [answer["request_id"]]


def _bad(body_changes: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    body = {**QWEN_SUBMIT, "data_source_path": "UPLOAD", **body_changes}
    for name in drop:
        body.pop(name)
    return body


BAD_SUBMITS: list[tuple[dict[str, Any], str]] = [
    (_bad({}, drop=("name",)), "name: is required"),
    (_bad({}, drop=("data_source_path",)), "data_source_path: is required"),
    (_bad({}, drop=("instance_prompt",)), "instance_prompt: is required"),
    (_bad({}, drop=("trigger_word",)), "trigger_word: is required"),
    (_bad({}, drop=("base_model",)), "base_model: is required"),
    (_bad({"name": ""}), "name"),
    (_bad({"name": 12}), "name"),
    (_bad({"base_model": "SDXL"}), "base_model: must be one of QWEN, FLUX, FAST_FLUX"),
    (_bad({"train_type": "FULL"}), "train_type: must be LORA"),
    (_bad({"machine_type": "TPU_V5"}), "machine_type: must be one of"),
    (_bad({"segmind_public": "maybe"}), "segmind_public"),
    (_bad({"advance_parameters": "fast"}), "advance_parameters"),
    (_bad({"advance_parameters": {"steps": 0}}), "advance_parameters.steps"),
    (_bad({"advance_parameters": {"steps": 10001}}), "advance_parameters.steps"),
    (_bad({"advance_parameters": {"steps": "many"}}), "advance_parameters.steps"),
    (_bad({"advance_parameters": {"learning_rate": 0}}), "advance_parameters.learning_rate"),
    (_bad({"advance_parameters": {"learning_rate": 1.5}}), "advance_parameters.learning_rate"),
    (_bad({"advance_parameters": {"rank": 0}}), "advance_parameters.rank"),
    (_bad({"advance_parameters": {"resolution": 30}}), "advance_parameters.resolution"),
    (_bad({"advance_parameters": {"batch_size": 0}}), "advance_parameters.batch_size"),
    (_bad({"advance_parameters": {"finetune_type": "DREAMBOOTH"}}), "advance_parameters.finetune_type"),
    (_bad({"advance_parameters": {"learnig_rate": 1e-4}}),
     "advance_parameters: unknown key 'learnig_rate'; did you mean learning_rate?"),
    (_bad({"advance_parameters": {"resolution": 72}}), "advance_parameters.resolution: Input should be a multiple of 16"),
    (_bad({"advance_parameters": {"steps": 10**40}}), "advance_parameters.steps: "),
    (_bad({"advance_parameters": {"lora_rank": 300}}), "advance_parameters.rank"),
    (_bad({"advance_parameters": {"steps": True}}), "advance_parameters.steps: must be a number"),
    # strict like /v1: a string is not a number (lax pydantic read "100" as 100)
    (_bad({"advance_parameters": {"steps": "100"}}), "advance_parameters.steps: must be a number, not a string ('100')"),
    (_bad({"advance_parameters": {"learning_rate": "1e-4"}}), "advance_parameters.learning_rate: must be a number"),
    (_bad({"advance_parameters": {"train_batch_size": "2"}}), "advance_parameters.batch_size: must be a number"),
    (_bad({"trigger_wrd": "TOK"}), "unknown key 'trigger_wrd'; did you mean trigger_word?"),
    (_bad({"trigger_word": "x" * 101}), "trigger_word"),
    (_bad({"data_source_path": "ftp://example.com/a.zip"}), "data_source_path: must be an http(s) URL"),
    (_bad({"data_source_path": "not a url"}), "data_source_path: must be an http(s) URL"),
    (_bad({"data_source_path": "file:///etc/passwd"}), "data_source_path: must be an http(s) URL"),
]


@pytest.fixture(scope="module")
def uploaded(module_app_client: ApiClient) -> str:
    return upload_dataset(module_app_client)


@pytest.mark.parametrize(("body", "expected"), BAD_SUBMITS, ids=[f"{n:02d}" for n in range(len(BAD_SUBMITS))])
def test_every_bad_submit_is_refused_with_a_400_naming_the_field(
    module_app_client: ApiClient, uploaded: str, body: dict[str, Any], expected: str
) -> None:
    api = module_app_client
    if body.get("data_source_path") == "UPLOAD":
        body = {**body, "data_source_path": uploaded}
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(), json=body)
    assert answer.status_code == 400, (body, answer.text)
    assert expected in answer.json()["error"], (body, answer.json())
    assert "Value error" not in answer.json()["error"]
    listed = api.client.get(f"{BASE}/list", headers=api.headers()).json()
    assert listed == [], "a refused submit must not create a job"


@pytest.mark.backends("storage")
def test_submit_with_someone_elses_upload_answers_like_a_missing_one(app_client: ApiClient) -> None:
    theirs = upload_dataset(app_client, app_client.new_key("mallory-victim"))
    missing = theirs.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000-nothing.zip"
    answers = [
        app_client.client.post(f"{BASE}/submit", headers=app_client.headers(),
                               json={**QWEN_SUBMIT, "data_source_path": url})
        for url in (theirs, missing)
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json(), "another key's upload must look like a missing one"
    assert "data_source_path" in answers[0].json()["error"]


@pytest.mark.backends("storage")
def test_submit_with_an_upload_url_that_was_never_put_is_refused(app_client: ApiClient) -> None:
    slot = app_client.client.request(
        "GET", f"{BASE}/upload/pre-signed-url", headers=app_client.headers(), json={"name": "never"}
    ).json()
    answer = app_client.client.post(
        f"{BASE}/submit",
        headers=app_client.headers(),
        json={**QWEN_SUBMIT, "data_source_path": slot["s3_url"]},
    )
    assert answer.status_code == 400
    assert "PUT the ZIP" in answer.json()["error"]


@pytest.mark.backends("storage")
def test_submit_with_an_unknown_url_of_this_store_is_not_found(app_client: ApiClient) -> None:
    real = upload_dataset(app_client)
    fake = real.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000-nothing.zip"
    answer = app_client.client.post(
        f"{BASE}/submit", headers=app_client.headers(), json={**QWEN_SUBMIT, "data_source_path": fake}
    )
    assert answer.status_code == 404
    assert "data_source_path" in answer.json()["error"]


@pytest.mark.backends("database")
def test_aliases_are_stored_under_the_names_training_reads(app_client: ApiClient) -> None:
    params = {"steps": 2, "lora_rank": 4, "train_batch_size": 2, "prompt": "sample prompt", "theme": "t"}
    answer = submit_job(app_client, body={**QWEN_SUBMIT, "advance_parameters": params})
    details = app_client.client.get(
        f"{BASE}/details", params={"request_id": answer["request_id"]}, headers=app_client.headers()
    ).json()["finetune"]
    assert details["advance_parameters"] == {
        "steps": 2, "rank": 4, "batch_size": 2, "prompt": "sample prompt", "theme": "t"}
