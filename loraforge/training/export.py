"""Writing the trained LoRA: a diffusers-format file and a ComfyUI-format copy, with metadata.

The diffusers file holds the peft state dict under the family's prefix (`transformer.`), with the LoRA scale
alpha / rank folded into lora_B and, in the safetensors header, the adapter's LoraConfig with
lora_alpha = rank as `lora_adapter_metadata`, so diffusers and ComfyUI both apply the trained
strength (see save_diffusers_lora); plus `loraforge.*` entries: base model, trigger word, steps,
rank, alpha, learning rate and the dataset's sha256. The ComfyUI copy uses kohya-style keys
(`lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha`) with the module names of the
family's layout (loraforge/families/<key>/export.py); where the layout fuses split q/k/v LoRAs
(FLUX's BFL `img_attn.qkv` / `txt_attn.qkv` / `linear1`) they are fused exactly (stacked downs,
block-placed ups, alpha times the number of parts). Both files are written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from loraforge.families.registry import BY_KEY

ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # what diffusers' load_lora_weights reads


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def adapter_metadata(lora_config: Any, prefix: str, **changes: Any) -> str:
    config = {**lora_config.to_dict(), **changes}
    for key, value in config.items():
        if isinstance(value, set):
            config[key] = sorted(value)
    return json.dumps({f"{prefix}{k}": v for k, v in config.items()}, indent=2, sort_keys=True, default=str)


def save_diffusers_lora(path: Path, family: str, lora: dict[str, torch.Tensor], lora_config: Any,
                        info: dict[str, Any]) -> Path:
    """Write the diffusers-format file with the LoRA scale alpha / r folded into every lora_B.

    Its LoraConfig then says lora_alpha = r, so each loader applies B @ A * alpha / r: diffusers and
    peft read the config (scale 1 on the scaled B), and ComfyUI, which takes alpha from per-module
    `.alpha` tensors and uses alpha = rank where there is none, also applies scale 1. `.alpha`
    tensors beside the config are no way out: diffusers 0.42's load_lora_weights refuses them for
    FLUX ("Both `network_alphas` and `metadata` cannot be specified") and, for Qwen-Image, converts
    the keys and then finds no target module. The trained alpha stays in `loraforge.alpha`.
    """
    prefix = BY_KEY[family].layout().DIFFUSERS_PREFIX
    scale = float(lora_config.lora_alpha) / float(lora_config.r)
    tensors = {f"{prefix}{k}": v * scale if k.endswith("lora_B.weight") and scale != 1.0 else v
               for k, v in lora.items()}
    metadata = {"format": "pt", ADAPTER_METADATA_KEY: adapter_metadata(lora_config, prefix, lora_alpha=lora_config.r)}
    metadata.update({f"loraforge.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in info.items()})
    return atomic_save(tensors, path, metadata)


_MODULE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def _pairs(lora: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in lora.items():
        match = _MODULE.match(key)
        if match:
            modules.setdefault(match["module"], {})[match["ab"]] = tensor
    return modules


def comfy_state_dict(family: str, lora: dict[str, torch.Tensor], alpha: float,
                     inner_dim: int | None = None) -> dict[str, torch.Tensor]:
    """Kohya/ComfyUI keys for the LoRA in `family`'s layout; parts its layout fuses are fused.

    Raises ValueError when a module must be fused and `inner_dim` (the transformer's width) is None.
    """
    layout = BY_KEY[family].layout()
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
    for module, ab in _pairs(lora).items():
        down, up = ab["A"], ab["B"]
        target = layout.comfy_target(module)
        if target is None:
            target = (module, None)  # not a module ComfyUI renames: keep the diffusers path
        name, part = target
        if part is None:
            base = "lora_unet_" + name.replace(".", "_")
            out[f"{base}.lora_down.weight"] = down
            out[f"{base}.lora_up.weight"] = up
            out[f"{base}.alpha"] = torch.tensor(float(alpha))
        else:
            fused.setdefault(name, {})[part] = (down, up)
    for name, parts in fused.items():
        if inner_dim is None:
            raise ValueError(f"inner_dim is needed to fuse {family} q/k/v LoRAs")
        order = sorted(parts)
        rank = parts[order[0]][0].shape[0]
        sizes = {i: (parts[i][1].shape[0]) for i in order}
        # Rows of the fused weight: part i starts at row i * inner_dim (the layout's docstring).
        offsets = {i: i * inner_dim for i in order}
        total = layout.fused_rows(name, inner_dim)
        down = torch.cat([parts[i][0] for i in order], dim=0)
        up = torch.zeros(total, rank * len(order), dtype=down.dtype)
        for col, i in enumerate(order):
            up[offsets[i]:offsets[i] + sizes[i], col * rank:(col + 1) * rank] = parts[i][1]
        base = "lora_unet_" + name.replace(".", "_")
        out[f"{base}.lora_down.weight"] = down
        out[f"{base}.lora_up.weight"] = up
        # The fused rank is len(order) * rank, so alpha scales with it to keep alpha / rank.
        out[f"{base}.alpha"] = torch.tensor(float(alpha) * len(order))
    return out


def save_comfy_lora(path: Path, family: str, lora: dict[str, torch.Tensor], alpha: float,
                    info: dict[str, Any], inner_dim: int | None = None) -> Path:
    tensors = comfy_state_dict(family, lora, alpha, inner_dim)
    metadata = {"format": "pt", **{f"loraforge.{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in info.items()}}
    return atomic_save(tensors, path, metadata)
