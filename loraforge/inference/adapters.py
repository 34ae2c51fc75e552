"""Loading a LoRA file into a diffusers pipeline as a named adapter, strictly.

diffusers only logs a warning when some of a LoRA's tensors find no layer in the model, and a
LoRA trained for another base model can fail deep inside peft with a shape dump. Here every such
case becomes one InferenceError a person can act on ("the LoRA does not match the base model
FLUX: ..."), and a LoRA that loaded only partly is removed again rather than served half-applied.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from loraforge.errors import InferenceError

logger = logging.getLogger(__name__)

# Tensor names of the two LoRA factors, in diffusers/peft naming and in kohya naming.
_FACTOR = re.compile(r"\.(lora_A|lora_B|lora_down|lora_up)(\.[^.]+)?\.weight$")
_SHAPE = re.compile(r"size mismatch for ([\w.]+?)\.lora_[AB]\.\w+\.weight")


def lora_tensor_names(path: Path) -> list[str]:
    """Names of the LoRA factor tensors in a .safetensors file (raises if it is not one)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise InferenceError(
            f"the LoRA file {path.name} is not a readable .safetensors file ({exc}); "
            "export it again with save_lora_weights"
        ) from None
    factors = [name for name in names if _FACTOR.search(name)]
    if not factors:
        raise InferenceError(
            f"the LoRA file {path.name} holds no LoRA tensors (no lora_A/lora_B weights among "
            f"{len(names)} tensors); is it a full model or an optimizer state?"
        )
    return factors


def load_adapter(pipe: Any, path: Path, adapter_name: str, *, base_model: str) -> None:
    """Load `path` into `pipe` as `adapter_name`; every LoRA tensor must land on a layer."""
    expected = lora_tensor_names(path)
    try:
        pipe.load_lora_weights(str(path), adapter_name=adapter_name)
    # diffusers' format converters fail with any type (AssertionError, IndexError...) on a file
    # laid out for another model; each is the same problem for the person deploying it.
    except Exception as exc:  # noqa: BLE001
        _forget(pipe, adapter_name)
        detail = str(exc).strip() or f"its tensors could not be converted ({type(exc).__name__})"
        raise InferenceError(_mismatch_message(base_model, detail)) from None
    loaded = _loaded_factor_count(pipe, adapter_name)
    if loaded < len(expected):
        _forget(pipe, adapter_name)
        missing = _unmatched_modules(pipe, expected)
        examples = ", ".join(missing[:3]) or "(names could not be matched)"
        raise InferenceError(
            f"the LoRA does not match the base model {base_model}: {len(expected) - loaded} of "
            f"{len(expected)} LoRA tensors have no matching layer, e.g. {examples}; "
            f"train it for {base_model} or deploy it on the base model it was trained for"
        )
    logger.info("loaded LoRA %s as adapter %s (%d tensors)", path.name, adapter_name, loaded)


def _mismatch_message(base_model: str, detail: str) -> str:
    shapes = sorted(set(_SHAPE.findall(detail)))
    if shapes:
        why = f"layer sizes differ at {', '.join(shapes[:3])}"
    else:
        why = detail.strip().splitlines()[0][:300] if detail.strip() else "unknown loading error"
    return (
        f"the LoRA does not match the base model {base_model}: {why}; "
        f"train it for {base_model} or deploy it on the base model it was trained for"
    )


def _loaded_factor_count(pipe: Any, adapter_name: str) -> int:
    marker = f".{adapter_name}.weight"
    count = 0
    for component in pipe.components.values():
        named = getattr(component, "named_parameters", None)
        if named is None:
            continue
        count += sum(1 for name, _ in named() if name.endswith(marker) and ".lora_" in name)
    return count


def _unmatched_modules(pipe: Any, tensor_names: list[str]) -> list[str]:
    """Module paths named by the file that the pipeline does not have (diffusers naming only)."""
    present: set[str] = set()
    for prefix, component in pipe.components.items():
        modules = getattr(component, "named_modules", None)
        if modules is not None:
            present.update(f"{prefix}.{name}" for name, _ in modules())
    missing = []
    for name in tensor_names:
        module = _FACTOR.sub("", name)
        if module not in present and module not in missing:
            missing.append(module)
    return missing


def _forget(pipe: Any, adapter_name: str) -> None:
    # A failed or partial load may leave the name registered on some components.
    try:
        names = {name for names in pipe.get_list_adapters().values() for name in names}
        if adapter_name in names:
            pipe.delete_adapters(adapter_name)
    except (ValueError, KeyError, AttributeError) as exc:
        logger.warning("could not remove partly loaded adapter %s: %s", adapter_name, exc)
