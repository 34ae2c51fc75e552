"""What a job shows while it trains: sample images, intermediate LoRAs and the loss history.

The worker side stores each sample image at `samples/{id}/step-{n}/{k}.png` and each
intermediate LoRA at `models/{id}/{slug}-step-{n}.safetensors`, and records a `JobArtifact` row
for it; `LossRecorder` buffers the progress reports and writes them as `LossPoint` rows in
batches (a resumed run rewrites the steps it repeats). The read side lists a job's samples and
checkpoints with links signed like downloads (valid DOWNLOAD_LINK_SECONDS), names the file meant
for each tool, and downsamples the loss history to at most MAX_LOSS_POINTS points by averaging
equal spans of steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.training_models import JobArtifact, LossPoint
from loraforge.storage import keys
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)

SAMPLE, INTERMEDIATE = "sample", "intermediate"
MAX_LOSS_POINTS = 500
LINK_SECONDS = 3600  # as file/download: the seeds promise links valid for one hour
FLUSH_POINTS = 200  # loss points buffered before a write, whatever the interval


def _record(sessions: sessionmaker[Session], row: JobArtifact) -> None:
    with sessions() as session:
        session.merge(row)  # a step redone after a crash overwrites its row
        session.commit()


def store_sample(store: ObjectStore, sessions: sessionmaker[Session], job_id: str, step: int, index: int,
                 prompt: str, path: Path) -> str:
    """Upload one sample image and record it; returns its key."""
    key = keys.sample_key(job_id, step, index)
    store.put_file(key, Path(path), content_type="image/png")
    _record(sessions, JobArtifact(job_id=job_id, kind=SAMPLE, step=step, index=index, prompt=prompt, key=key))
    return key


def store_intermediate(store: ObjectStore, sessions: sessionmaker[Session], job_id: str, slug: str, step: int,
                       path: Path) -> str:
    """Upload one intermediate LoRA and record it; returns its key."""
    key = keys.intermediate_key(job_id, slug, step)
    store.put_file(key, Path(path))
    _record(sessions, JobArtifact(job_id=job_id, kind=INTERMEDIATE, step=step, index=0, key=key))
    return key


class LossRecorder:
    """A progress callback that keeps every report as a LossPoint, written every `interval_s`."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, interval_s: float) -> None:
        self._sessions, self._job_id, self._interval_s = sessions, job_id, interval_s
        self._buffer: list[dict[str, Any]] = []
        self._last = time.monotonic()

    def __call__(self, progress: Any) -> None:
        if progress.loss is None or not math.isfinite(progress.loss):
            return
        self._buffer.append({"job_id": self._job_id, "step": progress.step, "loss": float(progress.loss),
                             "lr": getattr(progress, "lr", None), "step_seconds": getattr(progress, "step_seconds", None)})
        final = progress.step >= progress.total_steps
        if final or len(self._buffer) >= FLUSH_POINTS or time.monotonic() - self._last >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        rows, self._buffer = self._buffer, []
        self._last = time.monotonic()
        steps = [r["step"] for r in rows]
        with self._sessions() as session:
            session.execute(delete(LossPoint).where(LossPoint.job_id == self._job_id,
                                                    LossPoint.step.between(min(steps), max(steps))))
            session.execute(insert(LossPoint), rows)
            session.commit()


def loss_history(session: Session, job_id: str, max_points: int = MAX_LOSS_POINTS) -> list[dict[str, Any]]:
    """[{step, loss, lr, step_seconds}] by step; beyond max_points, means over equal spans of steps
    (each point then carries the span's last step)."""
    last = session.scalar(select(func.max(LossPoint.step)).where(LossPoint.job_id == job_id))
    if last is None:
        return []
    span = max(1, math.ceil(last / max_points))
    group = (LossPoint.step - 1) // span
    query = (
        select(func.max(LossPoint.step), func.avg(LossPoint.loss), func.avg(LossPoint.lr),
               func.avg(LossPoint.step_seconds))
        .where(LossPoint.job_id == job_id).group_by(group).order_by(group)
    )
    return [{"step": int(step), "loss": float(loss), "lr": None if lr is None else float(lr),
             "step_seconds": None if seconds is None else float(seconds)}
            for step, loss, lr, seconds in session.execute(query)]


def listed_outputs(store: ObjectStore, job: dict[str, Any], rows: Sequence[Any]) -> dict[str, Any]:
    """Details' `samples`, `checkpoints` and `files` for the job row `job`, links signed for an hour;
    `rows` are its artifacts (kind, step, index, prompt, key) by step, kind, index (jobstate.details)."""
    samples = [{"step": r.step, "index": r.index, "prompt": r.prompt, "url": store.presigned_get(r.key, LINK_SECONDS)}
               for r in rows if r.kind == SAMPLE]
    checkpoints = [{"step": r.step, "url": store.presigned_get(r.key, LINK_SECONDS),
                    "cloud_storage_url": store.object_url(r.key)} for r in rows if r.kind == INTERMEDIATE]
    return {"samples": samples, "checkpoints": checkpoints, "files": _files(store, job)}


# Which file each tool should load, and what it does with alpha (see export.py).
FILE_FORMATS = (
    ("diffusers", keys.LORA_SUFFIX, "diffusers / peft: pipe.load_lora_weights(path)"),
    ("comfyui", keys.COMFY_SUFFIX, "ComfyUI: LoraLoader / LoraLoaderModelOnly (kohya keys)"),
)


def _files(store: ObjectStore, job: dict[str, Any]) -> list[dict[str, str]]:
    if not job.get("cloud_storage_url"):
        return []
    files = []
    for fmt, suffix, tool in FILE_FORMATS:
        key = keys.model_key(job["id"], job["slug"], suffix)
        files.append({"format": fmt, "for": tool, "url": store.presigned_get(key, LINK_SECONDS),
                      "cloud_storage_url": store.object_url(key)})
    return files
