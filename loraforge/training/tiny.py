"""Tiny random-weight Qwen-Image and FLUX.1-dev pipelines, written as diffusers folders.

They keep the real architectures' shapes where the code depends on them (VAE scale 8, guidance
embeddings for FLUX.1-dev, 5-D Qwen latents, the 34-token Qwen template prefix) and are small
enough (a few MB) for CPU tests and the embedded demo. Everything is built locally: no hub.
`write_tiny_models(dir)` writes `dir/qwen-image` and `dir/flux-dev` atomically (built in a temp
folder, then renamed) so a half-written model is never picked up.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from loraforge.errors import TrainingError
from loraforge.training import tokenizers

if TYPE_CHECKING:
    from diffusers import FluxPipeline, QwenImagePipeline
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

TINY_NAMES = {"qwen": "qwen-image", "flux": "flux-dev"}


def tiny_flux_pipeline() -> FluxPipeline:
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


def tiny_qwen_pipeline() -> QwenImagePipeline:
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = tokenizers.build_qwen2_tokenizer()
    if tokenizers.qwen_template_prefix_length(tok) != tokenizers.QWEN_TEMPLATE_DROP:
        raise TrainingError("tiny Qwen tokenizer does not split the prompt template into 34 tokens")
    torch.manual_seed(0)
    z_dim = 4
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=z_dim * 4, out_channels=z_dim, num_layers=2, attention_head_dim=16,
        num_attention_heads=3, joint_attention_dim=16,  # text encoder hidden size
        guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    vae = AutoencoderKLQwenImage(
        base_dim=8, z_dim=z_dim, dim_mult=[1, 2, 2, 2], num_res_blocks=1,  # three downsamples: scale 8
        temperal_downsample=[False, True, True], latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
    def ids(token: str) -> int:
        return cast(int, tok.convert_tokens_to_ids(token))  # one token in, one id out

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2,
            "rope_parameters": {"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1e6},
            "bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": 16},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256,
        max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential")
    return QwenImagePipeline(transformer=transformer, vae=vae, scheduler=scheduler,
                             text_encoder=text_encoder, tokenizer=tok)


def _write_qwen_processor(path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Save the image processor next to the tokenizer so the text encoder can caption images."""
    # The PIL flavour: the full processor class also wants torchvision for video, which is absent.
    from transformers import Qwen2VLImageProcessorPil

    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(path)
    tokenizer.save_pretrained(path)


def write_tiny_models(dir: Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write `dir/qwen-image` and `dir/flux-dev`; existing complete folders are kept unless overwrite."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    builders = {"qwen": tiny_qwen_pipeline, "flux": tiny_flux_pipeline}
    written: dict[str, Path] = {}
    for family, name in TINY_NAMES.items():
        final = dir / name
        written[family] = final
        if (final / "model_index.json").exists() and not overwrite:
            continue
        pipe = builders[family]()
        with tempfile.TemporaryDirectory(dir=dir, prefix=f".{name}-") as tmp:
            staged = Path(tmp) / name
            pipe.save_pretrained(staged)
            if family == "qwen":
                _write_qwen_processor(staged / "processor", pipe.tokenizer)
            if final.exists():
                shutil.rmtree(final)
            staged.rename(final)
        logger.info("wrote tiny %s model to %s", family, final)
    return written
