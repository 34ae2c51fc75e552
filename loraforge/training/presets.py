"""Typed training presets (QWEN, FLUX, FAST_FLUX) and the resolved spec of one training run.

A preset fixes every hyper-parameter with a documented default; `resolve_spec` starts from the
preset of `base_model`, applies the API's `advance_parameters` (steps, learning_rate,
auto_caption, face_crop, finetune_type, the sample settings sample_every, sample_prompts,
keep_intermediate, and rank, resolution, batch_size when given), then the
caller's overrides (CLI flags, trigger word...), and validates the result. A bad value raises
ValidationError naming the field, e.g. `advance_parameters.learning_rate: ...`. Keys of
`advance_parameters` that training does not use (the seeds show `prompt`, `theme`) are ignored.
`fit_to_model` then caps the resolution at DEMO_RESOLUTION when the weights are the bundled tiny
demo model: a 1024 px run of a random-weight model costs minutes on a CPU and teaches nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from loraforge.config import Settings
from loraforge.errors import ValidationError
from loraforge.training.loading import Family, family_of, is_demo_model

logger = logging.getLogger(__name__)

FLUX_TARGETS = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",  # image stream (+ single blocks' q/k/v)
    "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",  # text stream
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)
QWEN_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
)

# Training resolution for the tiny demo models; real weights keep what the preset or caller asked.
DEMO_RESOLUTION = 128

MAX_SAMPLE_PROMPTS = 8  # each set renders every prompt: the cost grows with the count

TimestepSampling = Literal["logit_normal", "shifted", "uniform"]
BaseWeights = Literal["bf16", "fp8", "nf4"]


class TrainSpec(BaseModel):
    """Everything one training run needs besides the data and the weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model: Literal["QWEN", "FLUX", "FAST_FLUX"]
    family: Family
    trigger_word: str = Field("", max_length=100)
    instance_prompt: str | None = Field(None, max_length=1000)
    finetune_type: Literal["LORA"] = "LORA"
    steps: int = Field(1000, ge=1, le=100_000)
    learning_rate: float = Field(1e-4, gt=0, le=1e-2)
    rank: int = Field(16, ge=1, le=256)
    alpha: float = Field(16.0, gt=0)  # LoRA scale is alpha / rank
    resolution: int = Field(1024, ge=64, le=2048)  # longest bucket side, px
    resolution_note: str | None = None  # why the resolution differs from what was asked (demo cap)
    batch_size: int = Field(1, ge=1, le=64)
    auto_caption: bool = False
    face_crop: bool = False
    target_modules: tuple[str, ...] = FLUX_TARGETS
    timestep_sampling: TimestepSampling = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: float = Field(3.0, gt=0)  # for "shifted": sigma' = shift*s / (1 + (shift-1)*s)
    guidance: float = Field(1.0, ge=0)  # FLUX.1-dev's distilled guidance input while training
    max_sequence_length: int = Field(512, ge=16, le=1024)
    weight_decay: float = Field(1e-4, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(250, ge=1)
    seed: int = Field(0, ge=0)
    base_weights: BaseWeights = "bf16"  # fp8 (torchao) / nf4 (bitsandbytes) for small GPUs
    gradient_checkpointing: bool | None = None  # None: on a GPU with < 48 GiB only
    compile: bool | None = None  # None: where it pays (GPU; CPU with a wide enough model)
    # Sample sets while training (training/sampling.py): None = 4 sets per run, 0 = none.
    sample_every: int | None = Field(None, ge=0, le=100_000)
    sample_prompts: tuple[str, ...] | None = None  # None: the trigger word + two dataset captions
    sample_inference_steps: int = Field(20, ge=1, le=100)  # sampler steps per image
    keep_intermediate: bool = True  # keep the LoRA as it stands at each sample step

    @field_validator("resolution")
    @classmethod
    def _resolution_multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError("must be a multiple of 16 (VAE scale 8 x 2x2 latent packing)")
        return value

    @field_validator("sample_prompts", mode="before")
    @classmethod
    def _sample_prompts_list(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of prompt strings")
        prompts = tuple(v.strip() for v in value)
        if not 1 <= len(prompts) <= MAX_SAMPLE_PROMPTS:
            raise ValueError(f"must hold 1 to {MAX_SAMPLE_PROMPTS} prompts")
        if any(not p or len(p) > 1000 for p in prompts):
            raise ValueError("each prompt must have 1 to 1000 characters")
        return prompts

    @field_validator("trigger_word")
    @classmethod
    def _trigger_word_one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("must be a single line")
        return value.strip()

    @model_validator(mode="after")
    def _family_matches(self) -> TrainSpec:
        if family_of(self.base_model) != self.family:
            raise ValueError(f"base_model {self.base_model} is not a {self.family} model")
        return self

    @property
    def lora_scale(self) -> float:
        return self.alpha / self.rank


# The documented defaults (see README "Presets"). Steps are the default when the request gives none.
PRESETS: dict[str, dict[str, Any]] = {
    "QWEN": {
        "family": "qwen", "steps": 1000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "resolution": 1024,
        "batch_size": 1, "target_modules": QWEN_TARGETS, "timestep_sampling": "logit_normal",
        "max_sequence_length": 512,
    },
    "FLUX": {
        "family": "flux", "steps": 1000, "learning_rate": 1e-4, "rank": 16, "alpha": 16.0, "resolution": 1024,
        "batch_size": 1, "target_modules": FLUX_TARGETS, "timestep_sampling": "shifted", "shift": 3.0,
        "guidance": 1.0, "max_sequence_length": 512,
    },
    # Tuned for wall time: 512 px buckets (4x fewer tokens), short text (128 tokens, captions are
    # short), everything cached, and a larger lr so fewer steps reach the same place.
    "FAST_FLUX": {
        "family": "flux", "steps": 500, "learning_rate": 4e-4, "rank": 16, "alpha": 16.0, "resolution": 512,
        "batch_size": 1, "target_modules": FLUX_TARGETS, "timestep_sampling": "logit_normal",
        "guidance": 1.0, "max_sequence_length": 128,
    },
}

# advance_parameters keys training reads; rank/resolution/batch_size only when given.
ADVANCE_KEYS = ("steps", "learning_rate", "auto_caption", "face_crop", "finetune_type",
                "rank", "alpha", "resolution", "batch_size", "sample_every", "sample_prompts", "keep_intermediate")


def _field_errors(exc: PydanticValidationError, sources: dict[str, str]) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "spec"
        prefix = sources.get(field, field)
        parts.append(f"{prefix}: {err['msg']}")
    return "; ".join(parts)


def resolve_spec(base_model: str, advance_parameters: dict[str, Any] | None = None,
                 **overrides: Any) -> TrainSpec:
    """The preset of `base_model`, then advance_parameters, then overrides (None means not given)."""
    name = str(base_model).strip().upper()
    family_of(name)  # raises ValidationError naming base_model
    if advance_parameters is not None and not isinstance(advance_parameters, dict):
        raise ValidationError("advance_parameters must be a JSON object")
    values: dict[str, Any] = {"base_model": name, **PRESETS[name]}
    sources: dict[str, str] = {}
    for key, value in (advance_parameters or {}).items():
        if key not in ADVANCE_KEYS:
            logger.debug("ignoring advance_parameters.%s (not a training parameter)", key)
            continue
        if value is None:
            continue
        if key == "finetune_type" and isinstance(value, str):
            value = value.strip().upper()
        values[key] = value
        sources[key] = f"advance_parameters.{key}"
    for key, value in overrides.items():
        if key not in TrainSpec.model_fields or key in ("base_model", "family"):
            raise ValidationError(f"{key}: not a training parameter")
        if value is not None:
            values[key] = value
            sources[key] = key
    # A rank given without alpha keeps the preset's alpha/rank ratio (the effective LoRA scale).
    if "rank" in sources and "alpha" not in sources and isinstance(values["rank"], int) and values["rank"] > 0:
        preset = PRESETS[name]
        values["alpha"] = float(values["rank"]) * preset["alpha"] / preset["rank"]
    for key in ("steps", "rank", "batch_size", "resolution", "sample_every"):
        if isinstance(values.get(key), bool):  # JSON true is not a number of steps
            raise ValidationError(f"{sources.get(key, key)}: must be an integer")
    try:
        return TrainSpec(**values)
    except PydanticValidationError as exc:
        raise ValidationError(_field_errors(exc, sources)) from None


def fit_to_model(spec: TrainSpec, model_ref: str, settings: Settings) -> TrainSpec:
    """`spec` for training `model_ref`: the demo model trains at DEMO_RESOLUTION at most, noted why."""
    if spec.resolution <= DEMO_RESOLUTION or not is_demo_model(model_ref, settings):
        return spec
    family = "QWEN" if spec.family == "qwen" else "FLUX"
    note = (
        f"training at {DEMO_RESOLUTION} px instead of {spec.resolution} px: no real {family} weights are "
        f"configured, so this job trains the tiny demo model; set LORAFORGE_MODEL_{family} for full resolution"
    )
    return spec.model_copy(update={"resolution": DEMO_RESOLUTION, "resolution_note": note})
