"""Tables of what training shows while it runs: stored artifacts (samples, intermediate LoRAs) and loss points.

`JobArtifact` has one row per sample image (`kind` "sample", `index` = prompt position) or
intermediate LoRA (`kind` "intermediate", `index` 0) that the worker stored, with its storage
key, so details can list and sign them without listing the store. `LossPoint` has one row per
reported training step: the loss (mean since the previous report), learning rate and step time.
Both go away with their job (ON DELETE CASCADE); the objects themselves live under the job's
`samples/{id}/` and `models/{id}/` prefixes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loraforge.db.base import Base, UTCDateTime
from loraforge.timestamps import utcnow

JOB_FK = "finetune_jobs.id"


class JobArtifact(Base):
    """One stored sample image or intermediate LoRA of a job."""

    __tablename__ = "job_artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "sample" | "intermediate"
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str | None] = mapped_column(Text, default=None)
    key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LossPoint(Base):
    """The loss at one reported step of a job's training, with the learning rate and step time."""

    __tablename__ = "loss_points"

    job_id: Mapped[str] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float, default=None)
    step_seconds: Mapped[float | None] = mapped_column(Float, default=None)
