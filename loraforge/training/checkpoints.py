"""Training checkpoints: LoRA weights, optimizer state, step and RNG states, for exact resume.

A checkpoint is a folder `checkpoints/step-{n}/` written under a temporary name and renamed when
complete, so a worker killed mid-write leaves no checkpoint that looks whole. Resuming loads the
latest complete one, after checking that it was made by the same hyper-parameters and dataset:
the run then continues bit for bit as if it had never stopped. The last `keep` checkpoints stay.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from loraforge.errors import TrainingError
from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)

STATE = "state.json"
# A resumed run must use the same values of these, or it would not continue the same run.
MUST_MATCH = ("base_model", "rank", "alpha", "target_modules", "learning_rate", "batch_size",
              "resolution", "seed", "timestep_sampling", "logit_mean", "logit_std", "shift",
              "guidance", "max_sequence_length", "weight_decay", "max_grad_norm")


def fingerprint(spec: TrainSpec, dataset_sha256: str) -> dict[str, Any]:
    values = spec.model_dump(mode="json", include=set(MUST_MATCH))
    values["dataset_sha256"] = dataset_sha256
    return values


def save_checkpoint(root: Path, step: int, *, lora: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    rng: dict[str, torch.Tensor], meta: dict[str, Any], keep: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    staged = Path(tempfile.mkdtemp(prefix=f".step-{step}-", dir=root))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in lora.items()}, str(staged / "lora.safetensors"))
        torch.save(optimizer.state_dict(), staged / "optimizer.pt")
        torch.save(rng, staged / "rng.pt")
        (staged / STATE).write_text(json.dumps({"step": step, **meta}, indent=2, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint step %d written to %s", step, final)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if (p / STATE).exists() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def load_checkpoint(path: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint folder; TrainingError if it belongs to a different run."""
    state = json.loads((path / STATE).read_text())
    saved = state.get("fingerprint", {})
    differ = sorted(k for k in expected if saved.get(k) != expected[k])
    if differ:
        raise TrainingError(
            f"cannot resume from {path}: it was made with different {', '.join(differ)}; "
            "start without --resume or use a new output folder"
        )
    return {
        "step": int(state["step"]),
        "lora": load_file(str(path / "lora.safetensors")),
        "optimizer": torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
        "rng": torch.load(path / "rng.pt", map_location="cpu", weights_only=True),
    }
