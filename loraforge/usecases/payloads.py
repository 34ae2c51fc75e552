"""What a client may ask of the jobs layer: the submit and upload-slot payloads, validated.

The API parses request bodies into these models (errors name the field); usecases/finetune_requests.py takes
them as typed values. `advance_parameters` is the training presets' one schema
(loraforge.training.presets.AdvanceParameters): unknown keys are refused there, aliases mapped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from loraforge.families.registry import BASE_MODELS, base_model_names
from loraforge.training.parameters import unknown_key
from loraforge.training.presets import INSTANCE_PROMPT_MAX, TRIGGER_WORD_MAX, AdvanceParameters

TRAIN_TYPES = ("LORA",)
# The fields with a fixed set of values: the values, and how the error names them.
CHOICES = {
    "base_model": (BASE_MODELS, f"one of {base_model_names()}"),
    "train_type": (TRAIN_TYPES, "LORA (the only training type)"),
}


class FineTuneCreate(BaseModel):
    """Body of POST /finetune/request/submit (both seeds' shapes)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    data_source_path: str = Field(min_length=1, max_length=2048)
    instance_prompt: str = Field(min_length=1, max_length=INSTANCE_PROMPT_MAX)
    trigger_word: str = Field(min_length=1, max_length=TRIGGER_WORD_MAX)
    base_model: str
    theme: str | None = Field(None, max_length=200)
    machine_type: str | None = Field(None, max_length=64)
    train_type: str = "LORA"
    segmind_public: bool = False
    advance_parameters: AdvanceParameters = Field(default_factory=AdvanceParameters)  # type: ignore[valid-type]  # a class built by advance_model()

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise unknown_key(key, list(cls.model_fields))
        return data

    @field_validator(*CHOICES, mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(*CHOICES)
    @classmethod
    def _one_of_choices(cls, value: str, info: ValidationInfo) -> str:
        choices, why = CHOICES[info.field_name or ""]
        if value not in choices:
            raise ValueError(f"must be {why}, got {value!r}")
        return value

    @field_validator("data_source_path")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http(s) URL of a ZIP file (a public URL or this service's s3_url)")
        return value


class UploadRequest(BaseModel):
    """Body of GET /finetune/request/upload/pre-signed-url."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    extension: str = Field(".zip", pattern=r"^\.?[A-Za-z0-9]{1,10}$")
    public: bool = False
