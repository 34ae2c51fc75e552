"""Qwen-Image's LoRA file layouts: ComfyUI's keys are the diffusers module paths, nothing fused.

ComfyUI loads Qwen-Image in the diffusers module naming, so a ComfyUI (kohya-style) key is
`lora_unet_<module path with _ for .>` for every module and no weight is fused.
"""

from __future__ import annotations

DIFFUSERS_PREFIX = "transformer."


def comfy_target(module: str) -> tuple[str, int | None] | None:
    """The module itself, unfused: ComfyUI's Qwen-Image keys follow diffusers' module paths."""
    return module, None


def fused_rows(name: str, inner_dim: int) -> int:
    """Never asked: no Qwen-Image LoRA is fused (comfy_target gives no part index)."""
    raise ValueError(f"Qwen-Image fuses no LoRA weights, asked for {name}")
