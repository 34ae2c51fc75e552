"""The tiny random-weight Qwen-Image pipeline, for CPU tests and the embedded demo.

It keeps the real architecture's shapes where the code depends on them (VAE scale 8, 5-D
latents, the 34-token prompt template prefix, checked at build time) and is a few MB; its text
encoder also captions, so `write_extras` saves an image processor with it. Everything is built
locally (the tokenizer is trained on a small corpus by families.tokenizers): no hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from loraforge.errors import TrainingError
from loraforge.families import tokenizers

if TYPE_CHECKING:
    from diffusers import QwenImagePipeline


def build_pipeline() -> QwenImagePipeline:
    """A random-weight QwenImagePipeline of a few MB (seeded: the same weights every time)."""
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


def write_extras(folder: Path, pipe: QwenImagePipeline) -> None:
    """Save an image processor and the tokenizer in `folder`/processor: the text encoder captions with them."""
    # The PIL flavour: the full processor class also wants torchvision for video, which is absent.
    from transformers import Qwen2VLImageProcessorPil

    path = folder / "processor"
    Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112).save_pretrained(path)
    pipe.tokenizer.save_pretrained(path)
