"""LoRA files for the inference tests (and bench/inference.py), written with peft on the tiny transformers.

Training one would work too but costs seconds per file; these tests need LoRAs that change the
image noticeably and differ from each other, which random LoRA factors give in milliseconds. The
files are written by the pipeline's own `save_lora_weights`, the format training exports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

LoraWriter = Callable[[str, int], Path]


def write_random_lora(model_dir: Path, family: str, seed: int, dest_dir: Path) -> Path:
    """A LoRA on the attention projections of the tiny `family` transformer, factors drawn from `seed`."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from loraforge.training.loading import pipeline_class

    cls = pipeline_class(family)  # type: ignore[arg-type]
    pipe = cls.from_pretrained(str(model_dir))
    transformer = pipe.transformer
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    dest_dir.mkdir(parents=True, exist_ok=True)
    cls.save_lora_weights(str(dest_dir), transformer_lora_layers=get_peft_model_state_dict(transformer),
                          weight_name="lora.safetensors")
    return dest_dir / "lora.safetensors"
