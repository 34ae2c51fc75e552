"""The training cache: VAE latents and text embeddings computed once, before the loop.

Every image is encoded once (the latent distribution's mean and std, already normalised, so each
step draws a fresh latent sample without the VAE) and every caption once. Items are grouped by
aspect-ratio bucket so a batch always holds equal-sized latents. The pipeline comes in host memory:
the VAE is moved to the device first and encodes every image, then the text encoders join it and
encode every caption, while the transformer waits in host memory (unless a quantized one was
loaded onto the device), so caching never holds the whole pipeline on the device. The caller then
drops the text encoders and the VAE (`free_encoders`) and only then moves the transformer to the
device (with the VAE, when sample sets are rendered during training; it is small beside the
transformer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)


class DatasetItemLike(Protocol):
    image_path: Path
    caption: str
    bucket: tuple[int, int]  # (width, height)


class DatasetLike(Protocol):
    # Read-only members, so that a frozen dataclass (PreparedDataset) matches.
    @property
    def items(self) -> Any: ...  # sequence of DatasetItemLike
    @property
    def dataset_sha256(self) -> str: ...
    @property
    def report_path(self) -> Path: ...


@dataclass
class Bucket:
    """Equal-sized items: latent mean/std stacked on dim 0 and their text conditioning."""

    size: tuple[int, int]
    mean: torch.Tensor
    std: torch.Tensor
    text: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.mean.shape[0])


def load_pixels(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """An RGB image as a (1, 3, H, W) tensor in [-1, 1], resized to `size` if it is not already."""
    with Image.open(path) as opened:
        img = opened.convert("RGB")
        if img.size != size:
            img = img.resize(size, Image.Resampling.BICUBIC)
        array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


@torch.no_grad()
def build_cache(pipe: Any, family_ops: Any, dataset: DatasetLike, spec: TrainSpec, device: str) -> list[Bucket]:
    """Encode every image and caption of `dataset` once; returns one Bucket per size.

    Moves the VAE, then the text encoders, to `device` (they stay there, so the sample prompts can be
    encoded next); the transformer is left where it is.
    """
    groups: dict[tuple[int, int], list[DatasetItemLike]] = {}
    for item in dataset.items:
        groups.setdefault(tuple(item.bucket), []).append(item)
    pipe.vae.to(device)
    buckets = []
    for size, items in sorted(groups.items()):
        means, stds = [], []
        for item in items:  # one at a time: VAE activations at 1024 px are large
            mean, std = family_ops.encode_image(pipe, load_pixels(item.image_path, size).to(device))
            means.append(mean.float())
            stds.append(std.float())
        buckets.append(Bucket(size=size, mean=torch.cat(means), std=torch.cat(stds)))
    for name in TEXT_ENCODERS:
        if getattr(pipe, name, None) is not None:
            getattr(pipe, name).to(device)
    for bucket in buckets:
        items = groups[bucket.size]
        bucket.text = family_ops.encode_text(pipe, [item.caption for item in items], spec)
        logger.info("cached %d items of bucket %dx%d", len(items), *bucket.size)
    return buckets


def free_encoders(pipe: Any, device: str, keep_vae: bool = False) -> Any:
    """Drop the text encoders (and the VAE unless `keep_vae`: samples are rendered), then move the
    transformer (and the VAE) to `device`; returns the transformer.

    The transformer moves only now so that it never shares the device with the text encoders.
    """
    dropped = (*TEXT_ENCODERS, "tokenizer", "tokenizer_2") + (() if keep_vae else ("vae",))
    for name in dropped:
        if hasattr(pipe, name):
            setattr(pipe, name, None)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    pipe.to(device)  # the pipeline's own move: it knows which quantized modules may not move
    return pipe.transformer
