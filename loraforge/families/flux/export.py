"""FLUX.1-dev's LoRA file layouts: the diffusers prefix and ComfyUI's (BFL checkpoint) key names.

ComfyUI loads FLUX.1-dev from the original BFL checkpoint, whose attention projections are
fused: `double_blocks.N.img_attn.qkv` / `txt_attn.qkv` hold q, k, v (inner_dim rows each) and
`single_blocks.N.linear1` holds q, k, v then the MLP input (mlp_ratio 4: 4 x inner_dim rows), 7 x
inner_dim rows in all. `comfy_target` maps a diffusers module to its BFL module and the index
of its part in a fused weight (part i starts at row i * inner_dim); training.export fuses them.
"""

from __future__ import annotations

import re

DIFFUSERS_PREFIX = "transformer."

# diffusers module -> (BFL module, index of the part inside a fused weight or None).
_DOUBLE = {
    "attn.to_q": ("img_attn.qkv", 0), "attn.to_k": ("img_attn.qkv", 1), "attn.to_v": ("img_attn.qkv", 2),
    "attn.to_out.0": ("img_attn.proj", None),
    "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
    "attn.add_v_proj": ("txt_attn.qkv", 2), "attn.to_add_out": ("txt_attn.proj", None),
    "ff.net.0.proj": ("img_mlp.0", None), "ff.net.2": ("img_mlp.2", None),
    "ff_context.net.0.proj": ("txt_mlp.0", None), "ff_context.net.2": ("txt_mlp.2", None),
    "norm1.linear": ("img_mod.lin", None), "norm1_context.linear": ("txt_mod.lin", None),
}
_SINGLE = {
    "attn.to_q": ("linear1", 0), "attn.to_k": ("linear1", 1), "attn.to_v": ("linear1", 2),
    "proj_mlp": ("linear1", 3), "proj_out": ("linear2", None), "norm.linear": ("modulation.lin", None),
}


def comfy_target(module: str) -> tuple[str, int | None] | None:
    """(BFL module, part index or None) of a diffusers module path; None: not one ComfyUI renames."""
    match = re.match(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$", module)
    if not match:
        return None
    kind, index, rest = match.groups()
    table, prefix = (_DOUBLE, "double_blocks") if kind == "transformer_blocks" else (_SINGLE, "single_blocks")
    if rest not in table:
        return None
    name, part = table[rest]
    return f"{prefix}.{index}.{name}", part


def fused_rows(name: str, inner_dim: int) -> int:
    """Rows of the fused BFL weight `name`: q, k, v (3 x inner_dim), linear1 also the MLP input (7x)."""
    return 3 * inner_dim if name.endswith("qkv") else 7 * inner_dim
