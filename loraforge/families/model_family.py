"""What a model family is: the `ModelFamily` record and the shapes of the modules its folder holds.

A family's folder `loraforge/families/<key>/` holds `__init__.py` (a `FAMILY = ModelFamily(...)`
of plain data, importable without torch, so the API process can validate names), and four
modules the record loads on first use: `adapter.py` (caching, prediction, sampling: `Adapter`),
`architecture.py` (the published configs, built on any device: `Architecture`), `tiny.py` (the
tiny random-weight pipeline: `Tiny`) and `export.py` (the diffusers and ComfyUI key layouts:
`Layout`). tests/training/test_families.py checks that every registered family has them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import torch

    from loraforge.config import Settings


class StepSpec(Protocol):
    """The parts of a training spec (training.presets.TrainSpec) a family's adapter reads."""

    @property
    def max_sequence_length(self) -> int: ...
    @property
    def guidance(self) -> float: ...


class Adapter(Protocol):
    """A family's training code (its `adapter.py` module): latents, text, one prediction, sampling."""

    SAMPLE_NEGATIVE: str | None  # the sample sets' negative prompt, encoded with the prompts; None: none

    def encode_text(self, pipe: Any, captions: list[str], spec: StepSpec) -> dict[str, torch.Tensor]: ...
    def encode_image(self, pipe: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def Predictor(self, transformer: Any, spec: StepSpec) -> Any: ...
    def block_lists(self, transformer: Any) -> list[Any]: ...
    def sample_kwargs(self, text: dict[str, torch.Tensor], negative: dict[str, torch.Tensor] | None,
                      spec: StepSpec) -> dict[str, Any]: ...


class Architecture(Protocol):
    """A family's published full-size architecture (its `architecture.py` module)."""

    TRANSFORMER: dict[str, Any]  # the transformer's published config.json values
    TEXT: dict[str, int]  # conditioning widths the transformer expects ("dim", and "pooled_dim" if any)
    COMPONENTS: dict[str, tuple[str, dict[str, Any]]]  # other components: name -> (label, config)

    def transformer_class(self) -> Any: ...
    def build_component(self, name: str, device: str = "meta") -> Any: ...


class Tiny(Protocol):
    """A family's tiny random-weight pipeline (its `tiny.py` module), for tests and the demo."""

    def build_pipeline(self) -> Any: ...
    def write_extras(self, folder: Path, pipe: Any) -> None: ...


class Layout(Protocol):
    """A family's LoRA file layouts (its `export.py` module)."""

    DIFFUSERS_PREFIX: str  # the key prefix of the diffusers file: the pipeline component trained

    def comfy_target(self, module: str) -> tuple[str, int | None] | None: ...
    def fused_rows(self, name: str, inner_dim: int) -> int: ...


@dataclass(frozen=True)
class ModelFamily:
    """One pipeline family and the API base-model names that train it.

    `presets` maps each base-model name (upper case, as the API takes it) to its preset: the
    TrainSpec values that differ from the field defaults (training.presets). `weights_name` is
    the base model whose weights setting (`Settings.model_<weights_name lower>`, env
    LORAFORGE_MODEL_<weights_name>) and `models pull` name cover the whole family. `published_gb`
    is the bf16 pipeline's size in GB (10^9 bytes) on the hub; `hub_id` and `licence` are the
    published weights' repository and licence.
    """

    key: str  # "flux": TrainSpec.family and the pipeline slot's name
    label: str  # "FLUX.1-dev": how people call it
    pipeline_class: str  # the diffusers pipeline class's name
    presets: Mapping[str, Mapping[str, Any]]
    weights_name: str
    hub_id: str
    licence: str
    lora_targets: tuple[str, ...]  # peft target_modules of the presets
    published_gb: float
    true_cfg: bool  # guidance as a second (negative) batch: inference runs batch 2
    default_guidance: float  # inference's guidance scale when the request gives none
    default_steps: int  # inference's denoising steps when the request gives none
    lora_tells: tuple[str, ...]  # tensor-name parts only this family's LoRA files have
    tell_order: int  # families' tells are tried lowest first (a file told by two is the first's)
    tokenizer_folder: str  # the long-prompt encoder's tokenizer, counted against max_sequence_length
    caption_suffix: str  # what the pipeline's prompt template adds after a caption (counted too)
    tiny_name: str  # the tiny demo model's folder under Settings.tiny_models_dir
    public_loras: tuple[str, ...]  # base models whose trained LoRAs are stored public (no signed link)
    package: str  # the folder's module: loraforge.families.<key>

    @property
    def base_models(self) -> tuple[str, ...]:
        return tuple(self.presets)

    def weights_ref(self, settings: Settings) -> str | None:
        """The configured hub id or folder of this family's weights (None: the tiny demo model)."""
        return cast("str | None", getattr(settings, f"model_{self.weights_name.lower()}"))

    def pipeline(self) -> Any:
        """The diffusers pipeline class (imports diffusers)."""
        import diffusers

        return getattr(diffusers, self.pipeline_class)

    def adapter(self) -> Adapter:
        return cast(Adapter, import_module(f"{self.package}.adapter"))

    def architecture(self) -> Architecture:
        return cast(Architecture, import_module(f"{self.package}.architecture"))

    def tiny(self) -> Tiny:
        return cast(Tiny, import_module(f"{self.package}.tiny"))

    def layout(self) -> Layout:
        return cast(Layout, import_module(f"{self.package}.export"))
