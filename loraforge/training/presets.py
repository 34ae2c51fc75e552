"""Typed training presets (QWEN, FLUX, FAST_FLUX) and the resolved spec of one training run.

A preset fixes every hyper-parameter with a documented default; the presets are each family's
own (`loraforge/families/<key>/__init__.py`, read through the registry); `resolve_spec` starts from the
preset of `base_model`, applies the API's `advance_parameters` (validated by `AdvanceParameters`,
derived from the TrainSpec fields marked `advance(...)`: see loraforge.training.parameters), then
the caller's overrides (CLI flags, trigger word...), and validates the result. A bad value raises
ValidationError naming the field, e.g. `advance_parameters.learning_rate: ...`; an unknown key
names the closest known one. The seeds' `prompt` and `theme` are accepted and stored, not trained on.
`fit_to_model` then caps the resolution at DEMO_RESOLUTION when the weights are the bundled tiny
demo model: a 1024 px run of a random-weight model costs minutes on a CPU and teaches nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from loraforge.config import Settings
from loraforge.errors import ValidationError, describe_errors
from loraforge.families.registry import BASE_MODELS, BY_KEY, FAMILIES
from loraforge.training.loading import Family, family_of, is_demo_model
from loraforge.training.parameters import advance, advance_model, describe_rules, is_advance

logger = logging.getLogger(__name__)

# Training resolution for the tiny demo models; real weights keep what the preset or caller asked.
DEMO_RESOLUTION = 128

TRIGGER_WORD_MAX = 100  # characters; the API's submit has the same caps
INSTANCE_PROMPT_MAX = 1000

MAX_SAMPLE_PROMPTS = 8  # each set renders every prompt: the cost grows with the count

TimestepSampling = Literal["logit_normal", "shifted", "uniform"]
BaseWeights = Literal["bf16", "fp8", "nf4"]


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _sample_prompts(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError("prompt_list", "must be a list of prompt strings")
    prompts = tuple(v.strip() for v in value)
    if not 1 <= len(prompts) <= MAX_SAMPLE_PROMPTS:
        raise PydanticCustomError("prompt_list", "must hold 1 to {n} prompts", {"n": MAX_SAMPLE_PROMPTS})
    if any(not p or len(p) > 1000 for p in prompts):
        raise PydanticCustomError("prompt_list", "each prompt must have 1 to 1000 characters")
    return prompts


class TrainSpec(BaseModel):
    """Everything one training run needs besides the data and the weights.

    Fields made with `advance(...)` are the knobs clients set (advance_parameters, CLI flags):
    their bounds and rules live in the field's metadata so the derived `AdvanceParameters` and the
    presets page (docs/reference/presets.md) carry them unchanged (see loraforge.training.parameters).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_model: Literal["QWEN", "FLUX", "FAST_FLUX"]
    family: Family
    trigger_word: str = Field("", max_length=TRIGGER_WORD_MAX)
    instance_prompt: str | None = Field(None, max_length=INSTANCE_PROMPT_MAX)
    finetune_type: Annotated[Literal["LORA"], BeforeValidator(_upper)] = advance(
        "LORA", description="the training type; LORA is the only one")
    steps: int = advance(1000, ge=1, le=10_000, description="optimizer steps")
    learning_rate: float = advance(1e-4, gt=0, le=1e-2, description="AdamW learning rate")
    rank: int = advance(16, ge=1, le=256, description="LoRA rank (alias `lora_rank`)")
    alpha: float = advance(16.0, gt=0, le=1024, description=(
        "LoRA alpha; the LoRA scale is alpha / rank; default keeps the preset's alpha/rank ratio"))
    resolution: int = advance(1024, ge=64, le=2048, multiple_of=16, description=(
        "bucket size in px: buckets hold about resolution² pixels, sides up to 1.375x (736x1408 at 1024); "
        "a multiple of 16 (VAE scale 8 x 2x2 latent packing)"))
    resolution_note: str | None = None  # why the resolution differs from what was asked (demo cap)
    batch_size: int = advance(1, ge=1, le=64, description="images per step (alias `train_batch_size`)")
    auto_caption: bool = advance(False, description="caption images without a caption file with Qwen2.5-VL")
    face_crop: bool = advance(False, description="centre each crop on the largest face")
    target_modules: tuple[str, ...]  # no default: every preset names its family's LoRA targets
    timestep_sampling: TimestepSampling = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = Field(1.0, gt=0)
    shift: float = Field(3.0, gt=0)  # for "shifted": sigma' = shift*s / (1 + (shift-1)*s)
    guidance: float = Field(1.0, ge=0)  # FLUX.1-dev's distilled guidance input while training
    max_sequence_length: int = Field(512, ge=16, le=1024)
    weight_decay: float = Field(1e-4, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(250, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    base_weights: BaseWeights = "bf16"  # fp8 (torchao) / nf4 (bitsandbytes) for small GPUs
    gradient_checkpointing: bool | None = None  # None: on a GPU with < 48 GiB only
    compile: bool | None = None  # None: where it pays (GPU; CPU with a wide enough model)
    # Sample sets while training (training/sampling.py).
    sample_every: int | None = advance(None, ge=0, le=10_000, description=(
        "steps between sample sets; null: 4 sets per run, the last at the final step; 0: none"))
    sample_prompts: Annotated[tuple[str, ...] | None, BeforeValidator(_sample_prompts)] = advance(None, description=(
        f"1 to {MAX_SAMPLE_PROMPTS} sample prompts of 1 to 1000 characters; null: the trigger word and "
        "the first two captions"))
    sample_inference_steps: int = Field(20, ge=1, le=100)  # sampler steps per image
    keep_intermediate: bool = advance(True, description="keep the LoRA as it stands at each sample step")

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


# The documented defaults (see docs/reference/presets.md), each family's own, in the registry's order.
# Steps are the default when the request gives none.
PRESETS: dict[str, dict[str, Any]] = {name: dict(preset) for f in FAMILIES for name, preset in f.presets.items()}

# Names users send from other trainers' vocabularies (kohya, diffusers' scripts) for our fields.
ALIASES = {"lora_rank": "rank", "train_batch_size": "batch_size"}
# Other trainers' names for our knobs, suggested when an unknown key is sent (kohya's sd-scripts).
HINTS = {"lr": "learning_rate", "network_dim": "rank", "network_alpha": "alpha", "max_train_steps": "steps",
         "epochs": "steps", "size": "resolution", "image_size": "resolution", "batch": "batch_size"}
# The seeds' own keys: accepted and stored (details shows them), not training parameters.
STORED_KEYS: dict[str, Any] = {
    "prompt": (str | None, Field(None, min_length=1, max_length=1000, description=(
        "a sample prompt (the seeds' key): the sample set's prompt when `sample_prompts` is not given"))),
    "theme": (str | None, Field(None, max_length=200, description="a theme label (the seeds' key; stored)")),
}

AdvanceParameters = advance_model(TrainSpec, name="AdvanceParameters", aliases=ALIASES, hints=HINTS,
                                   stored=STORED_KEYS)


def parse_advance_parameters(advance_parameters: Any) -> dict[str, Any]:
    """Validated training keys of `advance_parameters`, aliases mapped; given ones only.

    Raises ValidationError naming `advance_parameters.<key>` (an unknown key with the closest
    known one). The stored keys (`prompt`, `theme`) are checked but not returned.
    """
    try:
        parsed = AdvanceParameters.model_validate(advance_parameters)
    except PydanticValidationError as exc:
        raise ValidationError(describe_errors(exc.errors(), "advance_parameters")) from None
    return parsed.model_dump(exclude_none=True, exclude=set(STORED_KEYS))


def resolve_spec(base_model: str, advance_parameters: dict[str, Any] | None = None,
                 **overrides: Any) -> TrainSpec:
    """The preset of `base_model`, then advance_parameters, then overrides (None means not given).

    Raises ValidationError naming the field: `advance_parameters.<key>` or the override's name.
    """
    name = str(base_model).strip().upper()
    family_of(name)  # raises ValidationError naming base_model
    given = parse_advance_parameters(advance_parameters)
    seed_prompt = (advance_parameters or {}).get("prompt") if isinstance(advance_parameters, dict) else None
    if seed_prompt and "sample_prompts" not in given:
        given["sample_prompts"] = (seed_prompt,)
    values: dict[str, Any] = {"base_model": name, **PRESETS[name], **given}
    sources = {key: f"advance_parameters.{key}" for key in given}
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
    try:
        return TrainSpec(**values)
    except PydanticValidationError as exc:
        raise ValidationError(describe_errors(exc.errors(), sources=sources)) from None


def advance_table() -> str:
    """The advance_parameters table of docs/reference/presets.md (markdown), generated from AdvanceParameters."""
    names = list(BASE_MODELS)
    rows = [f"| key | type and range | {' | '.join(names)} | meaning |", "|---|---|" + "---|" * len(names) + "---|"]
    for key, info in TrainSpec.model_fields.items():
        if not is_advance(info):
            continue
        defaults = [PRESETS[m].get(key, info.default) for m in names]
        cells = " | ".join(f"`{json.dumps(d)}`" for d in defaults)
        rows.append(f"| `{key}` | {describe_rules(info.annotation, info)} | {cells} | {info.description} |")
    for key, (annotation, info) in STORED_KEYS.items():
        rows.append(f"| `{key}` | {describe_rules(annotation, info)} |{' |' * len(names)} {info.description} |")
    return "\n".join(rows)


def fit_to_model(spec: TrainSpec, model_ref: str, settings: Settings) -> TrainSpec:
    """`spec` for training `model_ref`: the demo model trains at DEMO_RESOLUTION at most, noted why."""
    if spec.resolution <= DEMO_RESOLUTION or not is_demo_model(model_ref, settings):
        return spec
    family = BY_KEY[spec.family].weights_name
    note = (
        f"training at {DEMO_RESOLUTION} px instead of {spec.resolution} px: no real {family} weights are "
        f"configured, so this job trains the tiny demo model; set LORAFORGE_MODEL_{family} for full resolution"
    )
    return spec.model_copy(update={"resolution": DEMO_RESOLUTION, "resolution_note": note})
