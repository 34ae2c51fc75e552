"""Device-dependent choices of a training run: dtype, quantized base weights, recompute, compile.

On a GPU the frozen base runs in bf16 under autocast while the LoRA weights and the optimizer
stay fp32; on the CPU everything is fp32. Small GPUs can load the transformer's frozen weights
in fp8 (torchao) or nf4 (bitsandbytes) through the preset's `base_weights`; when the library or
a GPU is missing this fails early with an error that says what to install. Activation
recompute (gradient checkpointing) and torch.compile default to where they pay off.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch

from loraforge.errors import TrainingError
from loraforge.families.registry import BY_KEY
from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)

LARGE_GPU_BYTES = 48 * 1024**3


def is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def quantized_transformer(family: str, model_ref: str, base_weights: str, device: str) -> Any | None:
    """The transformer loaded with fp8/nf4 frozen weights, or None for plain bf16/fp32 weights."""
    if base_weights == "bf16":
        return None
    if not is_cuda(device):
        raise TrainingError(f"base_weights={base_weights} needs a CUDA GPU; use bf16 on the CPU")
    cls = BY_KEY[family].architecture().transformer_class()
    if base_weights == "nf4":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainingError("base_weights=nf4 needs bitsandbytes: pip install bitsandbytes")
        from diffusers import BitsAndBytesConfig

        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                    bnb_4bit_compute_dtype=torch.bfloat16)
    else:
        if importlib.util.find_spec("torchao") is None:
            raise TrainingError("base_weights=fp8 needs torchao: pip install torchao")
        from diffusers import TorchAoConfig
        from torchao.quantization import Float8WeightOnlyConfig

        config = TorchAoConfig(Float8WeightOnlyConfig())
    logger.info("loading the %s transformer with %s base weights", family, base_weights)
    return cls.from_pretrained(model_ref, subfolder="transformer", quantization_config=config,
                               dtype=torch.bfloat16)


def use_gradient_checkpointing(spec: TrainSpec, device: str) -> bool:
    if spec.gradient_checkpointing is not None:
        return spec.gradient_checkpointing
    if not is_cuda(device):
        return False
    return torch.cuda.get_device_properties(torch.device(device)).total_memory < LARGE_GPU_BYTES


def use_compile(spec: TrainSpec, device: str, width: int) -> bool:
    # On the CPU (bench/train_speed.py, mid-size FLUX, 1 thread) inductor took ~100 s to compile
    # and then ran 0.150 s/step against 0.132 eager: no gain there, so it is opt-in on the CPU.
    if spec.compile is not None:
        return spec.compile
    return is_cuda(device)


def compile_blocks(block_lists: list[Any]) -> int:
    """Regional compilation: each repeated block compiles once and the graph is reused."""
    count = 0
    for blocks in block_lists:
        for block in blocks:
            block.compile()
            count += 1
    return count
