"""Qwen-Image specifics of training: caching text and latents, and one transformer prediction.

The text side is the Qwen2.5-VL encoder's last hidden states after the 34-token template prefix,
padded to the longest caption with a mask. The image side is 5-D VAE latents (B, C, T=1, h, w),
normalised per channel with the VAE's latents_mean/std, packed into 2x2 patches; the transformer
takes the frame/row/col grid as `img_shapes`. No guidance input. Sample sets while training use
inference's true CFG 4.0 (FAMILY.default_guidance) against the authors' empty negative prompt " ".
"""

from __future__ import annotations

from typing import Any

import torch

from loraforge.families.model_family import StepSpec
from loraforge.families.qwen import FAMILY

SAMPLE_NEGATIVE: str | None = " "  # Qwen-Image's authors' empty negative prompt


def encode_text(pipe: Any, captions: list[str], spec: StepSpec) -> dict[str, torch.Tensor]:
    # On the text encoder's own device (see flux.encode_text).
    embeds, mask = pipe.encode_prompt(captions, device=pipe.text_encoder.device,
                                      max_sequence_length=spec.max_sequence_length)
    if mask is None:  # every caption has the same length: diffusers drops an all-ones mask
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    return {"prompt_embeds": embeds, "mask": mask}


def _stats(pipe: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = pipe.vae.config
    mean = torch.tensor(cfg.latents_mean, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.latents_std, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
    return mean, std


def encode_image(pipe: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised latent mean and std of images in [-1, 1], (B, 3, H, W) -> (B, C, 1, h, w)."""
    dist = pipe.vae.encode(pixels.unsqueeze(2).to(pipe.vae.dtype)).latent_dist
    mean, std = _stats(pipe, dist.mean)
    return (dist.mean - mean) / std, dist.std / std


def pack(latents: torch.Tensor) -> torch.Tensor:
    b, c, _, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, c4 = packed.shape
    x = packed.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, 1, h, w)


class Predictor:
    """Calls the Qwen-Image transformer on noisy 5-D latents."""

    def __init__(self, transformer: Any, spec: StepSpec) -> None:
        self.transformer = transformer
        self.spec = spec

    def __call__(self, noisy: torch.Tensor, sigma: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        b, _, _, h, w = noisy.shape
        dtype = self.transformer.dtype
        out = self.transformer(
            hidden_states=pack(noisy).to(dtype), timestep=sigma.to(dtype),
            encoder_hidden_states=text["prompt_embeds"], encoder_hidden_states_mask=text["mask"],
            img_shapes=[[(1, h // 2, w // 2)]] * b, return_dict=False,
        )[0]
        return unpack(out, h, w)


def block_lists(transformer: Any) -> list[Any]:
    return [transformer.transformer_blocks]


def sample_kwargs(text: dict[str, torch.Tensor], negative: dict[str, torch.Tensor] | None,
                  spec: StepSpec) -> dict[str, Any]:
    """QwenImagePipeline's keyword arguments for a sample image: true CFG against `negative`."""
    if negative is None:
        raise ValueError("Qwen-Image samples need the negative prompt's embeddings")
    return {"prompt_embeds_mask": text["mask"], "true_cfg_scale": FAMILY.default_guidance,
            "negative_prompt_embeds": negative["prompt_embeds"],
            "negative_prompt_embeds_mask": negative["mask"]}
