"""The registered model families and the base-model names the API accepts.

`FAMILIES` lists every family in the order names are shown (`base_model must be one of QWEN,
FLUX, FAST_FLUX`); `BASE_MODELS` maps each base-model name to its family's key and
`family_for(name)` to its `ModelFamily`. Importing this module loads no torch or diffusers: each
family's code modules load on first use (see model_family).

Adding a family (docs/adding-a-family.md): write the folder `loraforge/families/<key>/` with
`__init__.py` (`FAMILY = ModelFamily(...)`), `adapter.py`, `architecture.py`, `tiny.py` and
`export.py`, add its `FAMILY` to `FAMILIES` below and its `model_<weights_name>` field to
config.Settings, then run `pytest tests/training/test_families.py`: it fails naming each piece
the family lacks.
"""

from __future__ import annotations

from loraforge.errors import ValidationError
from loraforge.families import flux, qwen
from loraforge.families.model_family import ModelFamily

__all__ = ["BASE_MODELS", "BY_KEY", "FAMILIES", "WEIGHTS", "ModelFamily", "base_model_names",
           "base_models_in_words", "family_for", "family_key", "lora_is_public"]

FAMILIES: tuple[ModelFamily, ...] = (qwen.FAMILY, flux.FAMILY)
BY_KEY: dict[str, ModelFamily] = {f.key: f for f in FAMILIES}
# base-model name -> family key, in the order the API lists them.
BASE_MODELS: dict[str, str] = {name: f.key for f in FAMILIES for name in f.base_models}
# weights name (QWEN, FLUX: the LORAFORGE_MODEL_* and `models pull` names) -> its family.
WEIGHTS: dict[str, ModelFamily] = {f.weights_name: f for f in FAMILIES}


def base_model_names() -> str:
    """"QWEN, FLUX, FAST_FLUX": the accepted names, as error messages list them."""
    return ", ".join(BASE_MODELS)


def base_models_in_words() -> str:
    """"QWEN, FLUX or FAST_FLUX": the accepted names, as the CLI's help lists them."""
    names = list(BASE_MODELS)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def family_key(base_model: str) -> str:
    """The family key ("flux") of a base-model name in any case; ValidationError naming base_model."""
    key = BASE_MODELS.get(str(base_model).strip().upper())
    if key is None:
        raise ValidationError(f"base_model must be one of {base_model_names()}; got {base_model!r}")
    return key


def family_for(base_model: str) -> ModelFamily:
    """The family of a base-model name in any case (FAST_FLUX -> FLUX.1-dev); ValidationError if unknown."""
    return BY_KEY[family_key(base_model)]


def lora_is_public(base_model: str) -> bool:
    """Whether a job of `base_model` stores its LoRA public (FAST_FLUX); False for unknown names."""
    key = BASE_MODELS.get(str(base_model).strip().upper())
    return key is not None and str(base_model).strip().upper() in BY_KEY[key].public_loras
