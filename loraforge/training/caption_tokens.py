"""Counting a caption's tokens with the text encoder that will read it, to warn before it is cut.

FLUX.1-dev reads the prompt through T5 (`tokenizer_2`), up to the preset's max_sequence_length
(512; FAST_FLUX 128); Qwen-Image through Qwen2.5-VL's tokenizer (`tokenizer`), up to its preset's
512. Tokens past the limit are dropped silently by the pipelines, so preparation counts them with
the family's own tokenizer (its registry entry's `tokenizer_folder` and `caption_suffix`) and warns naming the image, its count and the limit. The count is what
the encoder keeps: for T5 the caption and its end-of-sequence token; for Qwen-Image the caption
and the end of diffusers' prompt template (`QwenImagePipeline.prompt_template_encode`, whose
34-token prefix is dropped before max_sequence_length applies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loraforge.families.registry import BY_KEY

if TYPE_CHECKING:
    from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]


def token_counter(family: str, model_ref: str) -> TokenCounter | None:
    """A function giving a caption's token count for `family`'s text encoder; None if unavailable.

    The tokenizer comes from `model_ref` (a local diffusers folder or a hub id, as training loads it).
    A tokenizer that cannot be loaded only costs the check, never the job (logged).
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_ref, subfolder=BY_KEY[family].tokenizer_folder)
    except Exception as exc:  # noqa: BLE001 - a missing tokenizer must not fail preparation
        logger.warning("caption token counts skipped: no tokenizer for %s (%s)", model_ref, exc)
        return None

    suffix = BY_KEY[family].caption_suffix

    def count(caption: str) -> int:
        return len(tokenizer(caption + suffix, truncation=False).input_ids)

    return count


def token_check(spec: TrainSpec, model_ref: str) -> dict[str, Any]:
    """prepare_dataset's keyword arguments that check the dataset against `spec`: each caption's
    tokens against its text length, and (so the worker and the CLI warn alike) the usable images
    against its batch size."""
    return {"count_tokens": token_counter(spec.family, model_ref),
            "token_limit": (spec.max_sequence_length, spec.base_model), "batch_size": spec.batch_size}
