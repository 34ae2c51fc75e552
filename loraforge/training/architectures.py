"""The full-size architectures, written down so benchmarks can build them with random weights.

Values are those of the published `transformer/config.json` of black-forest-labs/FLUX.1-dev
(19 double-stream and 38 single-stream blocks, 24 heads x 128 = 3072 wide, T5-XXL 4096-d text,
CLIP-L 768-d pooled, guidance embedding) and Qwen/Qwen-Image (60 dual-stream blocks, 24 heads x
128, Qwen2.5-VL-7B 3584-d text, 16 latent channels, 2x2 patches). `TEXT` gives the conditioning
shapes the transformer expects, so a benchmark can feed random text embeddings without the
multi-GB text encoders; both VAEs downsample by 8 into 16 channels.
"""

from __future__ import annotations

from typing import Any

import torch

from loraforge.training.loading import Family

FLUX_DEV_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 64, "out_channels": None, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56),
}

QWEN_IMAGE_TRANSFORMER: dict[str, Any] = {
    "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 3584, "guidance_embeds": False, "axes_dims_rope": (16, 56, 56),
}

TRANSFORMERS: dict[Family, dict[str, Any]] = {"flux": FLUX_DEV_TRANSFORMER, "qwen": QWEN_IMAGE_TRANSFORMER}
LATENT_CHANNELS = 16
VAE_SCALE = 8
TEXT: dict[Family, dict[str, int]] = {
    "flux": {"dim": 4096, "pooled_dim": 768},
    "qwen": {"dim": 3584},
}


def build_transformer(family: Family, device: str = "cpu", dtype: torch.dtype = torch.bfloat16,
                      **overrides: Any) -> Any:
    """A randomly initialised transformer of the full-size config (or a variant via overrides)."""
    from diffusers import FluxTransformer2DModel, QwenImageTransformer2DModel

    cls = QwenImageTransformer2DModel if family == "qwen" else FluxTransformer2DModel
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: 12-20B fp32 params would not fit
    try:
        with torch.device(device):
            model = cls(**{**TRANSFORMERS[family], **overrides})
    finally:
        torch.set_default_dtype(previous)
    return model.eval()
