"""Loading a LoRA file into a diffusers pipeline as a named adapter, strictly.

diffusers only logs a warning when some of a LoRA's tensors find no layer in the model, and a
LoRA trained for another base model can fail deep inside peft with a shape dump. Here every such
case becomes one InferenceError a person can act on: a file whose metadata or tensor names tell
another base model is refused before loading ("this LoRA was trained for QWEN, not FLUX"), any
other misfit says "the LoRA does not match the base model FLUX: ...", and a LoRA that loaded only
partly is removed again rather than served half-applied.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from loraforge.errors import InferenceError
from loraforge.families.registry import BASE_MODELS, FAMILIES

logger = logging.getLogger(__name__)

# Tensor-name parts only one family's transformer has (each family's `lora_tells`), in the
# families' `tell_order`: BFL's FLUX double blocks (ComfyUI/kohya files) also have img_mlp/txt_mod,
# which in diffusers naming only Qwen-Image has, so FLUX's are tried first.
FAMILY_TELLS = tuple((f.weights_name, f.lora_tells) for f in sorted(FAMILIES, key=lambda f: f.tell_order))

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


def trained_for(path: Path) -> tuple[str, str] | None:
    """(base model, how the file tells it) of a LoRA file, or None when nothing tells.

    loraforge writes `loraforge.base_model` into the file's metadata; other files are told by
    tensor names only one family has (FAMILY_TELLS). Raises InferenceError for an unreadable file.
    """
    names = lora_tensor_names(path)
    with safe_open(str(path), framework="pt") as handle:
        base = (handle.metadata() or {}).get("loraforge.base_model", "").strip().upper()
    if base in BASE_MODELS:
        return base, "its loraforge metadata says so"
    for family_base, tells in FAMILY_TELLS:
        found = next((name for name in names if any(tell in name for tell in tells)), None)
        if found is not None:
            return family_base, f"its tensor names are {family_base}'s, e.g. {found.rsplit('.lora', 1)[0]}"
    return None


def check_trained_for(path: Path, base_model: str) -> None:
    """InferenceError "this LoRA was trained for QWEN, not FLUX" when the file tells another family."""
    target = base_model.strip().upper()
    found = trained_for(path)
    # FLUX and FAST_FLUX share one family, and so one LoRA layout; an unknown base model is
    # refused elsewhere, naming the field.
    if found is None or target not in BASE_MODELS or BASE_MODELS[found[0]] == BASE_MODELS[target]:
        return
    trained, how = found
    # The same opening as every other misfit ("the LoRA does not match the base model ...").
    raise InferenceError(f"the LoRA does not match the base model {target}: this LoRA was trained for {trained}, "
                         f"not {target} ({how}); use it with the {trained} base model, or train one for {target}")


def load_adapter(pipe: Any, path: Path, adapter_name: str, *, base_model: str) -> None:
    """Load `path` into `pipe` as `adapter_name`; every LoRA tensor must land on a layer."""
    check_trained_for(path, base_model)  # before diffusers reports it as a shape dump
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
    lines = [line.strip() for line in detail.strip().splitlines() if line.strip()]
    if shapes:
        why = f"layer sizes differ at {', '.join(shapes[:3])}"
    else:
        # torch's "Error(s) in loading state_dict for Linear:" says nothing; its next line does.
        why = next((line for line in lines if "size mismatch" in line), lines[0] if lines else "")[:300].rstrip(".")
        why = why or "unknown loading error"
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
