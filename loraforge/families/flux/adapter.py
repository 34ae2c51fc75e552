"""FLUX.1-dev specifics of training: caching text and latents, and one transformer prediction.

The text side is T5 token embeddings (padded to `max_sequence_length`) plus CLIP's pooled vector;
the image side is 4-D VAE latents, normalised with the VAE's shift and scale, packed into 2x2
patches with (0, row, col) position ids. FLUX.1-dev is guidance-distilled, so the transformer also
gets a guidance value (the spec's, 1.0 by default while training). Sample sets while training
use the distilled guidance 3.5 of inference (FAMILY.default_guidance) and no negative prompt.
"""

from __future__ import annotations

from typing import Any

import torch

from loraforge.families.flux import FAMILY
from loraforge.families.model_family import StepSpec

SAMPLE_NEGATIVE: str | None = None


def encode_text(pipe: Any, captions: list[str], spec: StepSpec) -> dict[str, torch.Tensor]:
    """Text conditioning for each caption, stacked along dim 0 (computed once, then cached)."""
    # The device is the text encoders' own: while caching, the transformer may still be in host
    # memory, and diffusers would otherwise guess from whichever module it finds first.
    embeds, pooled, _ = pipe.encode_prompt(captions, prompt_2=None, device=pipe.text_encoder.device,
                                           max_sequence_length=spec.max_sequence_length)
    return {"prompt_embeds": embeds, "pooled": pooled}


def encode_image(pipe: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised latent mean and std of images in [-1, 1], shape (B, 3, H, W) -> (B, C, h, w)."""
    dist = pipe.vae.encode(pixels.to(pipe.vae.dtype)).latent_dist
    shift, scale = pipe.vae.config.shift_factor or 0.0, pipe.vae.config.scaling_factor
    return (dist.mean - shift) * scale, dist.std * scale


def pack(latents: torch.Tensor) -> torch.Tensor:
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, c4 = packed.shape
    x = packed.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class Predictor:
    """Calls the FLUX transformer on noisy latents; constant inputs are built once per bucket."""

    def __init__(self, transformer: Any, spec: StepSpec) -> None:
        self.transformer = transformer
        self.spec = spec
        self._ids: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, noisy: torch.Tensor, sigma: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        b, _, h, w = noisy.shape
        dtype = self.transformer.dtype
        if (h, w) not in self._ids:
            self._ids[(h, w)] = image_ids(h, w, noisy.device, dtype)
        embeds = text["prompt_embeds"]
        txt_ids = torch.zeros(embeds.shape[1], 3, device=noisy.device, dtype=dtype)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((b,), self.spec.guidance, device=noisy.device, dtype=torch.float32)
        out = self.transformer(
            hidden_states=pack(noisy).to(dtype), timestep=sigma.to(dtype), guidance=guidance,
            pooled_projections=text["pooled"], encoder_hidden_states=embeds, txt_ids=txt_ids,
            img_ids=self._ids[(h, w)], return_dict=False,
        )[0]
        return unpack(out, h, w)


def block_lists(transformer: Any) -> list[Any]:
    """The repeated blocks, for regional compilation and activation checkpointing."""
    return [transformer.transformer_blocks, transformer.single_transformer_blocks]


def sample_kwargs(text: dict[str, torch.Tensor], negative: dict[str, torch.Tensor] | None,
                  spec: StepSpec) -> dict[str, Any]:
    """FluxPipeline's keyword arguments for a sample image from cached embeddings (no negative)."""
    return {"pooled_prompt_embeds": text["pooled"], "guidance_scale": FAMILY.default_guidance,
            "max_sequence_length": spec.max_sequence_length}
