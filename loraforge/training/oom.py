"""Out of memory, recognised and explained in one place: what counts as out of memory, the words for
each stage of a job, and the advice a user gets when a stage runs out.

The trainer (training/engine.py) raises `trainer_oom_message` for `loraforge train` and the worker; the
job's child (worker/child/errors.py) reports `oom_message` with the stage and the sizes torch gave;
the memory preflight (worker/preflight.py) names stages with `STAGE_WORDS`. It lives in training/
because the trainer is a library that must not import the worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class StageWords:
    """How a message names one stage of a job: `doing` follows "while" ("out of memory while
    training"), `task` follows "for" ("not enough memory on cuda:0 for the deploy check")."""

    doing: str
    task: str


# The two phrasings differ where the messages users already see differ ("caching latents" while
# out of memory, "caching latents and captions" in the preflight); both are kept as they are.
STAGE_WORDS = {
    "prepare": StageWords("preparing the dataset", "preparing the dataset"),
    "load": StageWords("loading the model and caching latents", "loading the model and caching latents and captions"),
    "train": StageWords("training", "training"),
    "deploy": StageWords("running the deploy check", "the deploy check"),
}

# What to change when memory runs out, by stage (the user can act on the first part; the operator
# on the rest). Activations grow with resolution^2 and batch size; weights do not.
OOM_ADVICE = {
    "prepare": "auto_caption loads a captioning model for this stage: submit without "
               "advance_parameters.auto_caption, or with a machine_type that has more GPU memory",
    "load": "the base model's weights and text encoders alone need more than the device had free: submit "
            "with a machine_type that has more GPU memory, or ask the operator what else holds this GPU",
    "train": "lower advance_parameters.resolution (activations grow with its square) or batch_size, or "
             "submit with a machine_type that has more GPU memory",
    "deploy": "the deploy check loads the base pipeline for inference after training: submit with a "
              "machine_type that has more GPU memory, or ask the operator what else holds this GPU",
}


def trainer_oom_message(resolution: int, batch_size: int) -> str:
    """The trainer's own words when the device runs out mid-training (before the stage is known)."""
    return (f"out of GPU memory at resolution {resolution}, batch {batch_size}: lower them "
            "or load the base in nf4/fp8 (LORAFORGE_BASE_WEIGHTS on the worker, --base-weights on "
            "loraforge train)")


def is_oom(exc: BaseException | None) -> bool:
    """Whether `exc` or any exception it was raised from (`__cause__`) says memory ran out:
    MemoryError, torch.OutOfMemoryError, or a message saying "out of memory" or "can't allocate memory"."""
    while exc is not None:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
            return True
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            return True
        exc = exc.__cause__
    return False


def chain_text(exc: BaseException | None) -> str:
    """The messages of `exc` and of each exception it was raised from, joined with spaces."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__
    return " ".join(parts)


def oom_message(stage: str, exc: BaseException, device: str) -> str:
    """What ran out, during which stage, how much was asked and free (when torch says), what to change."""
    text = chain_text(exc)
    size = r"([\d.]+ ?[KMGT]i?B)"
    asked = re.search(rf"[Tt]ried to allocate {size}", text)
    free = re.search(rf"of which {size} (?:is )?free", text)
    total = re.search(rf"total capacity of {size}", text)
    cpu_bytes = re.search(r"you tried to allocate (\d+) bytes", text)
    where = "GPU" if device.startswith("cuda") else "host (CPU)"
    words = STAGE_WORDS.get(stage)
    message = f"out of {where} memory while {words.doing if words else stage}"
    facts = []
    if asked:
        facts.append(f"asked for {asked.group(1)}")
    elif cpu_bytes:
        facts.append(f"asked for {int(cpu_bytes.group(1)) / 2**30:.2f} GiB")
    if free:
        facts.append(f"{free.group(1)} free" + (f" of {total.group(1)}" if total else ""))
    if facts:
        message += f" ({', '.join(facts)})"
    return f"{message}: {OOM_ADVICE.get(stage, OOM_ADVICE['train'])}"
