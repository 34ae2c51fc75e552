"""Sample sets during training: every sample prompt rendered with the LoRA as trained so far.

A set is rendered after the steps of `sample_schedule` (by default four sets per run, the last
at the final step) at the training resolution, each prompt with its own fixed seed (`spec.seed +
k`, drawn by a CPU generator as the inference runner does), so sets compare across steps. The
pipeline is the one training loaded: its transformer (with the LoRA attached), its VAE and its
scheduler (the base model's own flow-matching sampler). The text encoders are gone by then, so
the prompts' embeddings are computed by `encode_prompts` while the training cache is built and
passed to the pipeline as `prompt_embeds`. Guidance follows the inference defaults, as each family's
adapter gives them (`sample_kwargs`: FLUX.1-dev's distilled 3.5; Qwen-Image's true CFG 4.0
against the empty prompt " ").
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loraforge.families.registry import BY_KEY
from loraforge.training.presets import TrainSpec

SETS_PER_RUN = 4  # default sample_every = ceil(steps / 4)
DEFAULT_CAPTIONS = 2  # the trigger word plus this many captions of the dataset


def sample_schedule(total_steps: int, sample_every: int | None) -> list[int]:
    """Training steps after which a set is rendered: multiples of sample_every, and the last step.

    `sample_every` None means ceil(total_steps / 4); 0 means no samples.
    """
    if sample_every == 0:
        return []
    every = sample_every or max(1, math.ceil(total_steps / SETS_PER_RUN))
    steps = list(range(every, total_steps + 1, every))
    if not steps or steps[-1] != total_steps:
        steps.append(total_steps)
    return steps


def default_prompts(trigger_word: str, captions: Sequence[str]) -> list[str]:
    """The trigger word alone, then the first two distinct captions of the dataset."""
    prompts = [trigger_word] if trigger_word else []
    for caption in captions:
        caption = caption.strip()
        if caption and caption not in prompts:
            prompts.append(caption)
        if len(prompts) >= DEFAULT_CAPTIONS + (1 if trigger_word else 0):
            break
    return prompts


@dataclass(frozen=True)
class SamplePlan:
    """What to render: at which steps, which prompts, at what size, with how many sampler steps."""

    steps: tuple[int, ...]
    prompts: tuple[str, ...]
    size: int  # px, square: the training resolution
    inference_steps: int

    def seed(self, index: int, base_seed: int) -> int:
        return base_seed + index


def plan_samples(spec: TrainSpec, captions: Sequence[str]) -> SamplePlan | None:
    """The run's sample plan, or None when there is nothing to render."""
    steps = sample_schedule(spec.steps, spec.sample_every)
    prompts = list(spec.sample_prompts) if spec.sample_prompts is not None else default_prompts(
        spec.trigger_word, captions)
    if not steps or not prompts:
        return None
    return SamplePlan(steps=tuple(steps), prompts=tuple(prompts), size=spec.resolution,
                      inference_steps=spec.sample_inference_steps)


@torch.no_grad()
def encode_prompts(pipe: Any, family_ops: Any, plan: SamplePlan, spec: TrainSpec) -> list[dict[str, torch.Tensor]]:
    """Embeddings of each sample prompt (and Qwen-Image's negative prompt last), while encoders are loaded."""
    negative = BY_KEY[spec.family].adapter().SAMPLE_NEGATIVE
    texts = list(plan.prompts) + ([negative] if negative is not None else [])
    return [family_ops.encode_text(pipe, [text], spec) for text in texts]


class Sampler:
    """Renders a set with the pipeline training holds (transformer + VAE + scheduler, no encoders)."""

    def __init__(self, pipe: Any, plan: SamplePlan, embeds: list[dict[str, torch.Tensor]], spec: TrainSpec,
                 autocast: Any) -> None:
        self.pipe, self.plan, self.spec, self.autocast = pipe, plan, spec, autocast
        self.embeds = embeds[: len(plan.prompts)]
        self.negative = embeds[len(plan.prompts)] if len(embeds) > len(plan.prompts) else None

    def _kwargs(self, index: int) -> dict[str, Any]:
        text = self.embeds[index]
        kwargs: dict[str, Any] = {
            "height": self.plan.size, "width": self.plan.size,
            "num_inference_steps": self.plan.inference_steps, "output_type": "pil",
            "generator": torch.Generator("cpu").manual_seed(self.plan.seed(index, self.spec.seed)),
            "prompt_embeds": text["prompt_embeds"],
        }
        kwargs.update(BY_KEY[self.spec.family].adapter().sample_kwargs(text, self.negative, self.spec))
        return kwargs

    def render(self, step: int, out_dir: Path) -> list[Path]:
        """Write step-{step}/{k}.png under out_dir for every prompt k; returns the paths in prompt order."""
        transformer = self.pipe.transformer
        was_training = transformer.training
        transformer.eval()
        folder = Path(out_dir) / f"step-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        try:
            # Compiled blocks run eagerly here: sampling's batch and sequence shapes differ from
            # training's, so this neither recompiles every block nor uses up dynamo's recompile limit.
            with torch.compiler.set_stance("force_eager"):
                for index in range(len(self.plan.prompts)):
                    with self.autocast:
                        image = self.pipe(**self._kwargs(index)).images[0]
                    paths.append(_save_png(image, folder / f"{index}.png"))
        finally:
            transformer.train(was_training)
        return paths


def _save_png(image: Any, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
