"""Which pipeline a base model name means, where its weights come from, and loading it.

`base_model` is the API's name (QWEN, FLUX, FAST_FLUX: loraforge.families.registry). The weights
are an explicit `--model`, else the family's `LORAFORGE_MODEL_<weights_name>` (a hub id such as
`Qwen/Qwen-Image` or `black-forest-labs/FLUX.1-dev`, or a local folder), else the tiny demo model kept in
`settings.tiny_models_dir`, written on first use (`is_demo_model` tells it apart, so training
can cap its resolution). Pipelines load in bf16 on a GPU and fp32 on the CPU, with
`low_cpu_mem_usage`.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import Any

from loraforge.config import Settings
from loraforge.errors import TrainingError
from loraforge.families.registry import BY_KEY, family_for, family_key

logger = logging.getLogger(__name__)

Family = str  # a registered family's key (loraforge.families.registry.BY_KEY)


def family_of(base_model: str) -> Family:
    """Map QWEN / FLUX / FAST_FLUX (any case) to its family key; ValidationError naming base_model."""
    return family_key(base_model)


def ensure_tiny_models(dir: Path) -> dict[str, Path]:
    """Write the tiny demo models into `dir` once, safely when several processes race to do it."""
    from loraforge.training.tiny import TINY_NAMES, write_tiny_models

    dir = Path(dir)
    if all((dir / name / "model_index.json").exists() for name in TINY_NAMES.values()):
        return {family: dir / name for family, name in TINY_NAMES.items()}
    dir.mkdir(parents=True, exist_ok=True)
    with open(dir / ".write.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the second process waits, then finds the folders written
        try:
            return write_tiny_models(dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def resolve_model_ref(base_model: str, settings: Settings, explicit: str | None = None) -> str:
    """The hub id or local folder to load: explicit > LORAFORGE_MODEL_* > tiny demo model."""
    family = family_for(base_model)
    if explicit:
        return str(explicit)
    configured = family.weights_ref(settings)
    if configured:
        return configured
    return str(ensure_tiny_models(settings.tiny_models_dir)[family.key])


def is_demo_model(model_ref: str, settings: Settings) -> bool:
    """Whether `model_ref` is one of the bundled tiny demo models (no real weights configured)."""
    from loraforge.training.tiny import TINY_NAMES

    path = Path(model_ref)
    if not path.is_dir():
        return False  # a hub id or a missing folder: never the demo model
    path = path.resolve()
    return path.parent == settings.tiny_models_dir and path.name in TINY_NAMES.values()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pipeline_class(family: Family) -> Any:
    """The diffusers pipeline class of a family key (imports diffusers)."""
    return BY_KEY[family].pipeline()


def dtype_for(device: str) -> Any:
    """bf16 on a GPU, fp32 on the CPU (bf16 matmuls on a CPU are slow and imprecise)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def read_pipeline(family: Family, model_ref: str, dtype: Any, **kwargs: Any) -> Any:
    """The diffusers pipeline for `family` from `model_ref`, in host memory in `dtype`."""
    looks_local = model_ref.startswith(("/", ".", "~")) or Path(model_ref).exists()
    if looks_local and not (Path(model_ref).expanduser() / "model_index.json").exists():
        raise TrainingError(f"model {model_ref!r} is not a diffusers pipeline folder (no model_index.json)")
    logger.info("loading %s pipeline from %s (%s)", family, model_ref, dtype)
    try:
        pipe = pipeline_class(family).from_pretrained(
            model_ref, dtype=dtype, low_cpu_mem_usage=True, **kwargs
        )
    except (OSError, ValueError) as exc:
        raise TrainingError(f"could not load base model {model_ref!r}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe
