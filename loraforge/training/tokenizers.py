"""The tiny models' tokenizers, kept importable here: they live in loraforge.families.tokenizers."""

from loraforge.families.tokenizers import (
    QWEN_TEMPLATE_DROP,
    QWEN_TEMPLATE_PREFIX,
    build_clip_tokenizer,
    build_qwen2_tokenizer,
    build_t5_tokenizer,
    qwen_template_prefix_length,
)

__all__ = ["QWEN_TEMPLATE_DROP", "QWEN_TEMPLATE_PREFIX", "build_clip_tokenizer", "build_qwen2_tokenizer",
           "build_t5_tokenizer", "qwen_template_prefix_length"]
