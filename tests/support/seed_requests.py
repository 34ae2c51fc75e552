"""Request bodies copied from the seeds (shared/seeds), and the upload step every submit needs."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from tests.fixtures.apps import ApiClient

BASE = "/finetune/request"

# seeds/000 (Qwen): the submit body, with the dataset URL filled in by the test.
QWEN_SUBMIT: dict[str, Any] = {
    "name": "qwentest",
    "instance_prompt": "1MAN, running in brown suit",
    "trigger_word": "1MAN",
    "base_model": "QWEN",
    "theme": "QWEN",
    "machine_type": "NVIDIA_H100",
    "train_type": "LORA",
    "segmind_public": False,
    "advance_parameters": {"steps": 1000, "auto_caption": False, "learning_rate": 0.0004},
}

# seeds/001 (Fast Flux): no machine_type, no train_type; finetune_type inside advance_parameters.
FAST_FLUX_SUBMIT: dict[str, Any] = {
    "name": "fastfluxtest1",
    "instance_prompt": "1MAN, running in brown suit",
    "trigger_word": "1MAN",
    "base_model": "FAST_FLUX",
    "theme": "subject",
    "segmind_public": False,
    "advance_parameters": {"steps": 2000, "face_crop": False, "finetune_type": "LORA"},
}

# Every field of both seeds' details samples, and of both list samples.
DETAILS_FIELDS = {
    "id",
    "request_id",
    "finetune_id",
    "name",
    "data_source_path",
    "instance_prompt",
    "status",
    "source_type",
    "base_model",
    "slug",
    "public_model",
    "error_message",
    "cloud_storage_url",
    "created_ts",
    "updated_ts",
}
LIST_FIELDS = {
    "id",
    "request_id",
    "data_source_path",
    "name",
    "status",
    "error_message",
    "segmind_model_path",
    "advance_parameters",
    "segmind_public_model",
    "train_type",
    "source_type",
    "base_model",
    "theme",
    "cloud_storage_url",
    "finetune_id",
    "model_information",
}


def tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed timestamp: the same bytes on every call, so tests can compare hashes.
        archive.writestr(zipfile.ZipInfo("a.txt", date_time=(2025, 1, 1, 0, 0, 0)), "a photo would go here")
    return buffer.getvalue()


def upload_dataset(api: ApiClient, key: str | None = None, public: bool = False) -> str:
    """Ask for a pre-signed URL (JSON body on GET, as the seeds do), PUT a ZIP; returns s3_url."""
    body: dict[str, Any] = {"name": "dataset"}
    headers = {"Content-Type": "application/zip"}
    if public:
        body.update(extension=".zip", public=True)
        headers["x-amz-acl"] = "public-read"
    answer = api.client.request("GET", f"{BASE}/upload/pre-signed-url", headers=api.headers(key), json=body)
    assert answer.status_code == 200, answer.text
    put = api.put_presigned(answer.json()["presigned_url"], tiny_zip(), headers)
    assert put.status_code in (200, 201, 204), put.text
    return str(answer.json()["s3_url"])


def submit_job(api: ApiClient, key: str | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = dict(body or QWEN_SUBMIT)
    payload["data_source_path"] = upload_dataset(api, key)
    answer = api.client.post(f"{BASE}/submit", headers=api.headers(key), json=payload)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
