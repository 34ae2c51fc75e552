"""FLUX.1-dev's published full-size architecture, to build on the meta device for `plan`.

Values are those of black-forest-labs/FLUX.1-dev's `<component>/config.json`: the transformer
(19 double-stream and 38 single-stream blocks, 24 heads x 128 = 3072 wide, T5-XXL 4096-d text,
CLIP-L 768-d pooled, guidance embedding), `text_encoder` (CLIP ViT-L/14 text tower,
openai/clip-vit-large-patch14), `text_encoder_2` (T5 v1.1 XXL encoder, google/t5-v1_1-xxl) and
`vae` (AutoencoderKL, 16 latent channels, downsampling 8, no quant convs).
"""

from __future__ import annotations

from typing import Any

TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 64, "out_channels": None, "num_layers": 19, "num_single_layers": 38,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
    "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": (16, 56, 56),
}
TEXT: dict[str, int] = {"dim": 4096, "pooled_dim": 768}

CLIP_L_TEXT: dict[str, Any] = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "vocab_size": 49408, "max_position_embeddings": 77, "projection_dim": 768, "hidden_act": "quick_gelu",
}
T5_XXL_ENCODER: dict[str, Any] = {
    "d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24, "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
}
VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "norm_num_groups": 32, "use_quant_conv": False,
    "use_post_quant_conv": False,
}
# component name -> (a label for people, its config); the transformer is TRANSFORMER.
COMPONENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "text_encoder": ("CLIP-L text", CLIP_L_TEXT), "text_encoder_2": ("T5-XXL encoder", T5_XXL_ENCODER),
    "vae": ("VAE", VAE),
}


def transformer_class() -> Any:
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel


def build_component(name: str, device: str = "meta") -> Any:
    """Component `name` of COMPONENTS, randomly initialised on `device` (meta: no memory)."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    config = COMPONENTS[name][1]
    with torch.device(device):
        if name == "vae":
            return AutoencoderKL(**config)
        if name == "text_encoder":
            return CLIPTextModel(CLIPTextConfig(**config))
        return T5EncoderModel(T5Config(**config))
