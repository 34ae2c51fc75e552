"""What a process holds on a device and what it may hold: bytes of modules, device names, budgets.

`pipeline_bytes(pipe)` is the bytes of the parameters and buffers of every torch module of a
diffusers pipeline (transformer, text encoders, VAE), counted once each even if shared; that is
what stays resident on the device while the pipeline is loaded (activations come and go per
request). `device_budget_bytes(settings, device)` is LORAFORGE_GPU_MEMORY_GB x 10^9 when set,
else the device's total memory (CUDA: `torch.cuda.get_device_properties(i).total_memory`; the
CPU: physical RAM from `sysconf`). GB here is 10^9 bytes, the unit of model cards and of the
memory table in docs/operate/gpus.md (an "80 GB" H100 has 85.0 x 10^9 bytes).
"""

from __future__ import annotations

import os
from typing import Any

from loraforge.config import Settings

GB = 10**9


def module_bytes(module: Any, seen: set[int] | None = None) -> int:
    """Bytes of `module`'s parameters and buffers, skipping tensors already in `seen` (by id)."""
    seen = set() if seen is None else seen
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


def pipeline_bytes(pipe: Any) -> int:
    """Bytes of the parameters and buffers of every torch module among `pipe.components`."""
    import torch

    seen: set[int] = set()
    return sum(
        module_bytes(component, seen)
        for component in pipe.components.values()
        if isinstance(component, torch.nn.Module)
    )


def resolve_device(name: str | None) -> str:
    """A canonical device name: None means the default training device; `cuda` means `cuda:<current>`."""
    import torch

    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    return name


def device_total_bytes(device: str) -> int:
    """The memory of `device` in bytes: a CUDA device's total memory, or the host's RAM."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def device_budget_bytes(settings: Settings, device: str) -> int:
    """LORAFORGE_GPU_MEMORY_GB x 10^9 if set, else all of `device`."""
    if settings.gpu_memory_gb is not None:
        return int(settings.gpu_memory_gb * GB)
    return device_total_bytes(device)


def gb(nbytes: float) -> str:
    """`nbytes` as a short decimal-GB figure for messages, e.g. '57.6 GB' or '0.0021 GB'."""
    value = nbytes / GB
    return f"{value:.1f} GB" if value >= 1 else f"{value:.2g} GB"
