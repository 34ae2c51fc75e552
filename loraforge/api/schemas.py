"""Payloads of the seed API: what each endpoint reads (`...Create`/`...Request`) and renders.

Requests are validated by pydantic with messages rewritten to name the field (see
`validate_payload`; submit's and upload's bodies are defined in loraforge.usecases.payloads, the
contract of the domain code they feed); responses are built as plain dicts by `render_details` / `render_list_row`
from a job row's mapping (a table row, not an ORM instance: the fastest path) with byte-for-byte
control over the seeds' field names. The
`...Public` models exist to describe those dicts truthfully in the OpenAPI docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from loraforge.errors import ValidationError, describe_errors
from loraforge.timestamps import iso_seconds

# What submit and upload accept is the domain's contract (usecases/payloads.py); the routes read it from here.
from loraforge.usecases import payloads

FineTuneCreate = payloads.FineTuneCreate
UploadRequest = payloads.UploadRequest

M = TypeVar("M", bound=BaseModel)


class DetailsRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)


class AccessUpdateRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=64)
    segmind_public: bool

    @field_validator("segmind_public", mode="before")
    @classmethod
    def _bool_any_case(cls, value: Any) -> Any:
        # The seed sends the form value "True"; accept true/false in any case, nothing vaguer.
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            raise ValueError(f"must be True or False, got {value!r}")
        return value


class DownloadRequest(BaseModel):
    cloud_storage_url: str = Field(min_length=1, max_length=2048)


class SubmitPublic(BaseModel):
    status: str
    request_id: str
    finetune_id: str
    name: str


class UploadPublic(BaseModel):
    presigned_url: str
    s3_url: str


class FineTunePublic(BaseModel):
    """One job as details renders it (a superset of both seeds' samples)."""

    id: str
    request_id: str
    finetune_id: str
    name: str
    data_source_path: str
    instance_prompt: str
    trigger_word: str
    status: str
    source_type: str
    base_model: str
    theme: str | None
    machine_type: str
    train_type: str
    slug: str
    public_model: bool
    error_message: str | None
    cloud_storage_url: str | None
    advance_parameters: dict[str, Any]
    created_ts: str
    updated_ts: str
    model_information: dict[str, Any] = {}
    inference_api_url: str | None = None  # POST here to generate, once AVAILABLE
    events: list[EventPublic] = []
    progress: ProgressPublic | None = None
    # The dataset report's summary once prepared: images_used, dropped and not_used files with
    # reasons, caption_sources, buckets, warnings, counts, error, report_url (signed, 1 hour).
    dataset: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = []  # [{step, index, prompt, url}] sample images, links signed for 1 hour
    checkpoints: list[dict[str, Any]] = []  # [{step, url, cloud_storage_url}] intermediate LoRAs
    files: list[dict[str, Any]] = []  # [{format, for, url, cloud_storage_url}] the file meant for each tool


class EventPublic(BaseModel):
    """One status change of a job: the status, when (UTC, ISO 8601) and an optional note."""

    status: str
    timestamp: str
    message: str | None = None


class ProgressPublic(BaseModel):
    """Live training progress: written by the worker at most once a second."""

    step: int | None
    total_steps: int | None
    loss: float | None
    eta_seconds: float | None


class DetailsPublic(BaseModel):
    finetune: FineTunePublic


class ListRowPublic(BaseModel):
    """One row of list (a superset of both seeds' samples)."""

    id: str
    request_id: str
    finetune_id: str
    name: str
    data_source_path: str
    status: str
    error_message: str | None
    segmind_model_path: str | None
    advance_parameters: dict[str, Any]
    segmind_public_model: bool
    train_type: str
    source_type: str
    base_model: str
    theme: str | None
    slug: str
    cloud_storage_url: str | None
    model_information: dict[str, Any]
    created_ts: str
    updated_ts: str


def validate_payload(model: type[M], data: Any) -> M:
    """Validate `data` as `model`; the first problem becomes a ValidationError naming the field."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(describe_errors(exc.errors())) from None


def render_details(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "request_id": job["id"],
        "finetune_id": job["id"],
        "name": job["name"],
        "data_source_path": job["data_source_path"],
        "instance_prompt": job["instance_prompt"],
        "trigger_word": job["trigger_word"],
        "status": job["status"],
        "source_type": job["source_type"],
        "base_model": job["base_model"],
        "theme": job["theme"],
        "machine_type": job["machine_type"],
        "train_type": job["train_type"],
        "slug": job["slug"],
        "public_model": job["segmind_public"],
        "error_message": job["error_message"],
        "cloud_storage_url": job["cloud_storage_url"],
        "advance_parameters": job["advance_parameters"],
        "created_ts": iso_seconds(job["created_ts"]),
        "updated_ts": iso_seconds(job["updated_ts"]),
    }


def render_list_row(job: Mapping[Any, Any]) -> dict[str, Any]:  # a RowMapping: str or Column keys
    return {
        "id": job["id"],
        "request_id": job["id"],
        "finetune_id": job["id"],
        "name": job["name"],
        "data_source_path": job["data_source_path"],
        "status": job["status"],
        "error_message": job["error_message"],
        "segmind_model_path": job["segmind_model_path"],
        "advance_parameters": job["advance_parameters"],
        "segmind_public_model": job["segmind_public"],
        "train_type": job["train_type"],
        "source_type": job["source_type"],
        "base_model": job["base_model"],
        "theme": job["theme"],
        "slug": job["slug"],
        "cloud_storage_url": job["cloud_storage_url"],
        "model_information": job["model_information"],
        "created_ts": iso_seconds(job["created_ts"]),
        "updated_ts": iso_seconds(job["updated_ts"]),
    }
