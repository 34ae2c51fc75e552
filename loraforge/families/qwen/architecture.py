"""Qwen-Image's published full-size architecture, to build on the meta device for `plan`.

Values are those of Qwen/Qwen-Image's `<component>/config.json`: the transformer (60
dual-stream blocks, 24 heads x 128, Qwen2.5-VL-7B 3584-d text, 16 latent channels, 2x2
patches), `text_encoder` (Qwen2.5-VL-7B-Instruct: 28 layers x 3584, GQA 28/4 heads, 18944 MLP,
152064 vocabulary, 32-block 1280-wide vision tower) and `vae` (AutoencoderKLQwenImage, the
Wan-2.1 layout: base 96 channels, multipliers 1, 2, 4, 4; 16 latent channels, downsampling 8).
"""

from __future__ import annotations

from typing import Any

TRANSFORMER: dict[str, Any] = {
    "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 3584, "guidance_embeds": False, "axes_dims_rope": (16, 56, 56),
}
TEXT: dict[str, int] = {"dim": 3584}

VL_7B: dict[str, Any] = {
    "text_config": {
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
        "rope_theta": 1e6, "tie_word_embeddings": False,
    },
    "vision_config": {
        "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "in_channels": 3, "hidden_act": "silu",
    },
    "vocab_size": 152064, "tie_word_embeddings": False,
}
VAE: dict[str, Any] = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2}
# component name -> (a label for people, its config); the transformer is TRANSFORMER.
COMPONENTS: dict[str, tuple[str, dict[str, Any]]] = {"text_encoder": ("Qwen2.5-VL-7B", VL_7B), "vae": ("VAE", VAE)}


def transformer_class() -> Any:
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel


def build_component(name: str, device: str = "meta") -> Any:
    """Component `name` of COMPONENTS, randomly initialised on `device` (meta: no memory)."""
    import torch
    from diffusers import AutoencoderKLQwenImage
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = COMPONENTS[name][1]
    with torch.device(device):
        if name == "vae":
            return AutoencoderKLQwenImage(**config)
        return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config))
