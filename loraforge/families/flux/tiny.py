"""The tiny random-weight FLUX.1-dev pipeline, for CPU tests and the embedded demo.

It keeps the real architecture's shapes where the code depends on them (VAE scale 8, guidance
embeddings, 2x2 packing of the latents) and is a few MB. Everything is built locally (the
tokenizers are trained on a small corpus by families.tokenizers): no hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from loraforge.families import tokenizers

if TYPE_CHECKING:
    from diffusers import FluxPipeline


def build_pipeline() -> FluxPipeline:
    """A random-weight FluxPipeline of a few MB (seeded: the same weights every time)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok = tokenizers.build_clip_tokenizer()
    t5_tok = tokenizers.build_t5_tokenizer()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # VAE latent channels (4) x 2x2 packing
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5 d_model
        pooled_projection_dim=32,  # CLIP hidden size
        guidance_embeds=True,  # FLUX.1-dev is guidance-distilled
        axes_dims_rope=[4, 4, 8],  # sums to attention_head_dim
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,
        pad_token_id=clip_tok.pad_token_id, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(clip_tok), hidden_act="gelu",
        projection_dim=32, max_position_embeddings=77))
    text_encoder_2 = T5EncoderModel(T5Config(  # type: ignore[call-arg]  # extra keys: __post_init__(**kwargs)
        vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
        pad_token_id=t5_tok.pad_token_id, eos_token_id=t5_tok.eos_token_id, decoder_start_token_id=0))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, sample_size=64,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=(8, 16, 16, 16),  # four blocks: VAE scale factor 8 as in FLUX
        layers_per_block=1, latent_channels=4, norm_num_groups=4,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                  max_shift=1.15, base_image_seq_len=256,
                                                  max_image_seq_len=4096),
        text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=clip_tok,
        tokenizer_2=t5_tok, transformer=transformer, vae=vae, image_encoder=None, feature_extractor=None)


def write_extras(folder: Path, pipe: FluxPipeline) -> None:
    """Nothing beyond the pipeline's own folders (FLUX.1-dev captions with Qwen-Image's encoder)."""
