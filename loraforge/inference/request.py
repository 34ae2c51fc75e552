"""The generation request: the JSON body of `POST /v1/{slug}` and the flags of `loraforge generate`.

`parse_request(body, settings)` turns an untrusted mapping into a frozen GenerationRequest or
raises ValidationError naming the field and saying what is allowed. Types are strict (`"512"` is
not a width, `1` is not `true`) because a client that sends the wrong type has a bug worth
hearing about; an unknown field is refused naming the closest one (`steps`: did you mean
`num_inference_steps`?), since silently ignoring it would generate something not asked for.
Size and step caps come from Settings so an operator can raise them on a large GPU.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from loraforge.config import Settings
from loraforge.errors import ValidationError
from loraforge.families.registry import FAMILIES
from loraforge.hints import check_known

SIZE_MULTIPLE = 16  # VAE scale 8 x 2x2 latent packing, the same for FLUX and Qwen-Image
MIN_SIDE = 64
MIN_STEPS = 2
MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**63 - 1
EMPTY_BODY = "the request body must be a JSON object with at least a 'prompt'"
# Steps when a request leaves them out: the model cards' defaults (FLUX.1-dev 28, Qwen-Image 50),
# each family's `default_steps`.
DEFAULT_STEPS = {f.key: f.default_steps for f in FAMILIES}
# What other image APIs (diffusers' CLI scripts, Segmind's other models, A1111) call our fields.
SYNONYMS = {
    "steps": "num_inference_steps", "num_steps": "num_inference_steps", "inference_steps": "num_inference_steps",
    "guidance": "guidance_scale", "cfg": "guidance_scale", "cfg_scale": "guidance_scale",
    "true_cfg_scale": "guidance_scale", "negative": "negative_prompt", "lora_scale": "lora_strength",
    "strength": "lora_strength", "format": "image_format", "output_format": "image_format",
    "img_width": "width", "img_height": "height",
}


class GenerationRequest(BaseModel):
    """What to generate; `None` means the base model family's default."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt: str = Field(strict=True, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(None, strict=True, max_length=MAX_PROMPT_CHARS)
    width: int = Field(1024, strict=True)
    height: int = Field(1024, strict=True)
    num_inference_steps: int | None = Field(None, strict=True)
    guidance_scale: float | None = Field(None, strict=True, ge=0.0, le=30.0)
    seed: int | None = Field(None, strict=True, ge=0, le=MAX_SEED)
    lora_strength: float = Field(1.0, strict=True, ge=0.0, le=2.0)
    image_format: Literal["png", "jpeg"] = "png"
    base64: bool = Field(False, strict=True)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("image_format", mode="before")
    @classmethod
    def _format_aliases(cls, value: Any) -> Any:
        # "jpg" and upper case are what people type; normalise rather than refuse.
        if isinstance(value, str):
            value = value.strip().lower()
            return "jpeg" if value == "jpg" else value
        return value

    def with_seed(self) -> GenerationRequest:
        """This request with a seed drawn at random if none was given (so it can be reported)."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": secrets.randbelow(2**32)})


def parse_request(body: Any, settings: Settings, base_model: str | None = None) -> GenerationRequest:
    """Validate an untrusted body against the schema and the operator's caps (for `base_model`)."""
    if not isinstance(body, Mapping):
        raise ValidationError("the request body must be a JSON object with at least a 'prompt'")
    check_known(body, GenerationRequest.model_fields, synonyms=SYNONYMS)
    try:
        request = GenerationRequest.model_validate(dict(body))
    except PydanticValidationError as exc:
        raise ValidationError(_describe(exc)) from None
    check_limits(request, settings, base_model=base_model)
    return request


def check_limits(request: GenerationRequest, settings: Settings, *, base_model: str | None = None) -> None:
    """Refuse sizes, step counts and costs (width x height x steps) the operator has not allowed.

    The cost uses the base model's default steps when the request gives none; without a base
    model it is checked only for an explicit step count. Raises ValidationError naming the fields.
    """
    cap = settings.inference_max_side
    for field in ("width", "height"):
        value = getattr(request, field)
        if value % SIZE_MULTIPLE or not MIN_SIDE <= value <= cap:
            raise ValidationError(
                f"{field}: must be a multiple of {SIZE_MULTIPLE} between {MIN_SIDE} and {cap} (got {value})"
            )
    steps = request.num_inference_steps
    # At least 2: with Qwen-Image's scheduler (shift_terminal) a single step divides by zero -> NaN.
    if steps is not None and not MIN_STEPS <= steps <= settings.inference_max_steps:
        raise ValidationError(
            f"num_inference_steps: must be between {MIN_STEPS} and {settings.inference_max_steps} (got {steps})"
        )
    if steps is None and base_model is not None:
        from loraforge.training.loading import family_of

        steps = DEFAULT_STEPS[family_of(base_model)]
    cost = request.width * request.height * (steps or 0)
    if cost > settings.inference_max_pixel_steps:
        raise ValidationError(
            f"width, height, num_inference_steps: width x height x steps is {request.width} x "
            f"{request.height} x {steps} = {cost:,}, over this service's cap of "
            f"{settings.inference_max_pixel_steps:,} (LORAFORGE_INFERENCE_MAX_PIXEL_STEPS); "
            "ask for a smaller image or fewer steps"
        )


def _describe(exc: PydanticValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "body"
        message = "is required" if err["type"] == "missing" else err["msg"]
        message = message.removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        problems.append(f"{field}: {message}")
    return "; ".join(problems)
