"""The full-size architectures, written down so benchmarks can build them with random weights.

Values are those of the published `transformer/config.json` of black-forest-labs/FLUX.1-dev
(19 double-stream and 38 single-stream blocks, 24 heads x 128 = 3072 wide, T5-XXL 4096-d text,
CLIP-L 768-d pooled, guidance embedding) and Qwen/Qwen-Image (60 dual-stream blocks, 24 heads x
128, Qwen2.5-VL-7B 3584-d text, 16 latent channels, 2x2 patches). `TEXT` gives the conditioning
shapes the transformer expects, so a benchmark can feed random text embeddings without the
multi-GB text encoders; both VAEs downsample by 8 into 16 channels.

`COMPONENTS` adds the other published components of each pipeline, so the whole pipeline can be
built on the meta device (`build_component(..., device="meta")`, no memory, no weights) to count
its parameters: FLUX.1-dev's `text_encoder` (CLIP ViT-L/14 text tower, openai/clip-vit-large-patch14),
`text_encoder_2` (T5 v1.1 XXL encoder, google/t5-v1_1-xxl) and `vae` (AutoencoderKL, 16 latent
channels, no quant convs); Qwen-Image's `text_encoder` (Qwen2.5-VL-7B-Instruct: 28 layers x 3584,
GQA 28/4 heads, 18944 MLP, 152064 vocabulary, 32-block 1280-wide vision tower) and `vae`
(AutoencoderKLQwenImage, the Wan-2.1 layout: base 96 channels, multipliers 1, 2, 4, 4). Values
are those of each repository's `<component>/config.json`.
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


CLIP_L_TEXT: dict[str, Any] = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "vocab_size": 49408, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu",
}
T5_XXL_ENCODER: dict[str, Any] = {
    "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
}
FLUX_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "use_quant_conv": False,
    "use_post_quant_conv": False,
}
QWEN_VL_7B: dict[str, Any] = {
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
QWEN_VAE: dict[str, Any] = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2}

# component name -> (a label for people, its config); the transformer comes from TRANSFORMERS.
COMPONENTS: dict[Family, dict[str, tuple[str, dict[str, Any]]]] = {
    "flux": {"text_encoder": ("CLIP-L text", CLIP_L_TEXT), "text_encoder_2": ("T5-XXL encoder", T5_XXL_ENCODER),
             "vae": ("VAE", FLUX_VAE)},
    "qwen": {"text_encoder": ("Qwen2.5-VL-7B", QWEN_VL_7B), "vae": ("VAE", QWEN_VAE)},
}


def build_component(family: Family, name: str, device: str = "meta") -> Any:
    """One pipeline component of the full-size architecture, built on `device` (meta: no memory)."""
    if name == "transformer":
        return build_transformer(family, device=device)
    from diffusers import AutoencoderKL, AutoencoderKLQwenImage
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        T5Config,
        T5EncoderModel,
    )

    config = COMPONENTS[family][name][1]
    with torch.device(device):
        if name == "vae":
            return (AutoencoderKLQwenImage if family == "qwen" else AutoencoderKL)(**config)
        if family == "qwen":
            return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config))
        if name == "text_encoder":
            return CLIPTextModel(CLIPTextConfig(**config))
        return T5EncoderModel(T5Config(**config))


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
