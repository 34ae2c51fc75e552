"""Writing the trained LoRA: a diffusers-format file and a ComfyUI-format copy, with metadata.

The diffusers file holds the peft state dict under the `transformer.` prefix, with the LoRA scale
alpha / rank folded into lora_B and, in the safetensors header, the adapter's LoraConfig with
lora_alpha = rank as `lora_adapter_metadata`, so diffusers and ComfyUI both apply the trained
strength (see save_diffusers_lora); plus `loraforge.*` entries: base model, trigger word, steps,
rank, alpha, learning rate and the dataset's sha256. The ComfyUI copy uses kohya-style keys
(`lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha`). For FLUX the modules are named
as in the original BFL checkpoint ComfyUI loads, so the split q/k/v LoRAs are fused exactly into
`img_attn.qkv` / `txt_attn.qkv` / `linear1` (stacked downs, block-placed ups, alpha times the
number of parts). Both files are written under a temporary name and renamed.
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

from loraforge.training.loading import Family

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


def adapter_metadata(lora_config: Any, **changes: Any) -> str:
    config = {**lora_config.to_dict(), **changes}
    for key, value in config.items():
        if isinstance(value, set):
            config[key] = sorted(value)
    return json.dumps({f"transformer.{k}": v for k, v in config.items()}, indent=2, sort_keys=True, default=str)


def save_diffusers_lora(path: Path, lora: dict[str, torch.Tensor], lora_config: Any,
                        info: dict[str, Any]) -> Path:
    """Write the diffusers-format file with the LoRA scale alpha / r folded into every lora_B.

    Its LoraConfig then says lora_alpha = r, so each loader applies B @ A * alpha / r: diffusers and
    peft read the config (scale 1 on the scaled B), and ComfyUI, which takes alpha from per-module
    `.alpha` tensors and uses alpha = rank where there is none, also applies scale 1. `.alpha`
    tensors beside the config are no way out: diffusers 0.42's load_lora_weights refuses them for
    FLUX ("Both `network_alphas` and `metadata` cannot be specified") and, for Qwen-Image, converts
    the keys and then finds no target module. The trained alpha stays in `loraforge.alpha`.
    """
    scale = float(lora_config.lora_alpha) / float(lora_config.r)
    tensors = {f"transformer.{k}": v * scale if k.endswith("lora_B.weight") and scale != 1.0 else v
               for k, v in lora.items()}
    metadata = {"format": "pt", ADAPTER_METADATA_KEY: adapter_metadata(lora_config, lora_alpha=lora_config.r)}
    metadata.update({f"loraforge.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in info.items()})
    return atomic_save(tensors, path, metadata)


# FLUX: diffusers module -> (BFL module, index of the part inside a fused weight or None). Part i
# starts at row i * inner_dim; linear1 holds the MLP input (part 3) after q, k and v.
_FLUX_DOUBLE = {
    "attn.to_q": ("img_attn.qkv", 0), "attn.to_k": ("img_attn.qkv", 1), "attn.to_v": ("img_attn.qkv", 2),
    "attn.to_out.0": ("img_attn.proj", None),
    "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
    "attn.add_v_proj": ("txt_attn.qkv", 2), "attn.to_add_out": ("txt_attn.proj", None),
    "ff.net.0.proj": ("img_mlp.0", None), "ff.net.2": ("img_mlp.2", None),
    "ff_context.net.0.proj": ("txt_mlp.0", None), "ff_context.net.2": ("txt_mlp.2", None),
    "norm1.linear": ("img_mod.lin", None), "norm1_context.linear": ("txt_mod.lin", None),
}
_FLUX_SINGLE = {
    "attn.to_q": ("linear1", 0), "attn.to_k": ("linear1", 1), "attn.to_v": ("linear1", 2),
    "proj_mlp": ("linear1", 3), "proj_out": ("linear2", None), "norm.linear": ("modulation.lin", None),
}
_MODULE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def _flux_target(module: str) -> tuple[str, int | None] | None:
    match = re.match(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$", module)
    if not match:
        return None
    kind, index, rest = match.groups()
    table, prefix = (_FLUX_DOUBLE, "double_blocks") if kind == "transformer_blocks" else (_FLUX_SINGLE, "single_blocks")
    if rest not in table:
        return None
    name, part = table[rest]
    return f"{prefix}.{index}.{name}", part


def _pairs(lora: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in lora.items():
        match = _MODULE.match(key)
        if match:
            modules.setdefault(match["module"], {})[match["ab"]] = tensor
    return modules


def comfy_state_dict(family: Family, lora: dict[str, torch.Tensor], alpha: float,
                     inner_dim: int | None = None) -> dict[str, torch.Tensor]:
    """Kohya/ComfyUI keys for the LoRA; FLUX q/k/v parts are fused as in BFL's checkpoint."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
    for module, ab in _pairs(lora).items():
        down, up = ab["A"], ab["B"]
        target = _flux_target(module) if family == "flux" else (module, None)
        if target is None:
            target = (module, None)  # not a FLUX module ComfyUI renames: keep the diffusers path
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
            raise ValueError("inner_dim is needed to fuse FLUX q/k/v LoRAs")
        order = sorted(parts)
        rank = parts[order[0]][0].shape[0]
        sizes = {i: (parts[i][1].shape[0]) for i in order}
        # Rows of the fused weight: q, k, v are inner_dim each; linear1's MLP part follows them.
        offsets = {i: i * inner_dim for i in order}
        # FLUX single blocks: linear1 = q, k, v then the MLP input (mlp_ratio 4) = 7 x inner_dim rows.
        total = 3 * inner_dim if name.endswith("qkv") else 7 * inner_dim
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


def save_comfy_lora(path: Path, family: Family, lora: dict[str, torch.Tensor], alpha: float,
                    info: dict[str, Any], inner_dim: int | None = None) -> Path:
    tensors = comfy_state_dict(family, lora, alpha, inner_dim)
    metadata = {"format": "pt", **{f"loraforge.{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in info.items()}}
    return atomic_save(tensors, path, metadata)
