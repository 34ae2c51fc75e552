"""The full-size architectures, built from each family's published configs with random weights.

The configs themselves are each family's own (`loraforge/families/<key>/architecture.py`, values
of the published `<component>/config.json`); this module builds them for benchmarks and `plan`:
`build_transformer` in a chosen dtype on a chosen device, `build_component` for any component
(on the meta device by default: no memory, no weights, to count parameters), and
`build_from_folder` from a local diffusers folder's configs. `TEXT` gives the conditioning shapes
each transformer expects, so a benchmark can feed random text embeddings without the multi-GB
text encoders; every registered family's VAE downsamples by 8 into 16 channels.
"""

from __future__ import annotations

from typing import Any

import torch

from loraforge.families.registry import BY_KEY, FAMILIES

TRANSFORMERS: dict[str, dict[str, Any]] = {f.key: f.architecture().TRANSFORMER for f in FAMILIES}
LATENT_CHANNELS = 16
VAE_SCALE = 8
TEXT: dict[str, dict[str, int]] = {f.key: f.architecture().TEXT for f in FAMILIES}
# family -> component name -> (a label for people, its config); the transformer is in TRANSFORMERS.
COMPONENTS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {f.key: f.architecture().COMPONENTS for f in FAMILIES}


def build_transformer(family: str, device: str = "cpu", dtype: torch.dtype = torch.bfloat16,
                      **overrides: Any) -> Any:
    """A randomly initialised transformer of the full-size config (or a variant via overrides)."""
    cls = BY_KEY[family].architecture().transformer_class()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: 12-20B fp32 params would not fit
    try:
        with torch.device(device):
            model = cls(**{**TRANSFORMERS[family], **overrides})
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def build_component(family: str, name: str, device: str = "meta") -> Any:
    """One pipeline component of the full-size architecture, built on `device` (meta: no memory)."""
    if name == "transformer":
        return build_transformer(family, device=device)
    return BY_KEY[family].architecture().build_component(name, device)


def build_from_folder(model_dir: str, name: str, device: str = "meta") -> Any:
    """Component `name` of the diffusers pipeline folder `model_dir`, built from its config alone.

    The class comes from the folder's model_index.json and the config from `<name>/config.json`;
    no weights are read. Raises FileNotFoundError / KeyError when the folder lacks them.
    """
    import json
    from pathlib import Path

    import diffusers
    import transformers

    library, class_name = json.loads((Path(model_dir) / "model_index.json").read_text())[name]
    cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
    with torch.device(device):
        if library == "diffusers":
            return cls.from_config(cls.load_config(model_dir, subfolder=name))
        return cls(transformers.AutoConfig.from_pretrained(model_dir, subfolder=name))
