"""Out of memory is reported as what it is: the stage, the memory asked for and free, what to change.

The text is torch's own (c10/cuda/CUDACachingAllocator.cpp's OutOfMemoryError message), raised
as the trainer raises it (TrainingError from torch.OutOfMemoryError); a real CUDA OOM needs a GPU.
"""

from __future__ import annotations

import pytest
import torch

from loraforge.errors import TrainingError
from loraforge.training.oom import is_oom, oom_message

CUDA_OOM = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
            "3.25 GiB is free. Including non-PyTorch memory, this process has 75.93 GiB memory in use.")


def _wrapped() -> TrainingError:
    try:
        try:
            raise torch.OutOfMemoryError(CUDA_OOM)
        except torch.OutOfMemoryError as exc:
            raise TrainingError("out of GPU memory at resolution 1024, batch 1: lower them") from exc
    except TrainingError as exc:
        return exc


def test_a_cuda_oom_names_the_stage_the_sizes_and_what_to_change() -> None:
    exc = _wrapped()
    assert is_oom(exc)
    message = oom_message("train", exc, "cuda:0")
    assert message.startswith("out of GPU memory while training (asked for 20.00 GiB, 3.25 GiB free of 79.19 GiB)")
    assert "resolution" in message and "batch_size" in message


@pytest.mark.parametrize("stage", ["load", "deploy"])
def test_loading_and_the_deploy_check_do_not_blame_the_resolution(stage: str) -> None:
    message = oom_message(stage, _wrapped(), "cuda:0")
    assert "resolution" not in message
    assert "machine_type" in message


def test_a_host_allocation_failure_is_reported_in_gib() -> None:
    exc = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 21474836480 bytes. Error code 12 (Cannot allocate memory)")
    assert is_oom(exc)
    assert oom_message("load", exc, "cpu").startswith("out of host (CPU) memory while loading the model and "
                                                      "caching latents (asked for 20.00 GiB)")


def test_other_errors_are_not_oom() -> None:
    assert not is_oom(TrainingError("loss became nan at step 3; lower learning_rate"))
