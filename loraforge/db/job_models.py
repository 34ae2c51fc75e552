"""Tables of a job's run: `JobRun` (lease, cancel flag, progress, checkpoint) and `JobEvent` (status history).

They sit beside the request model `FineTuneJob` (db/models.py) rather than inside it so that the
worker's bookkeeping (who holds a job, how far training got, where the last checkpoint is) can
change without touching the request. `JobRun` has one row per job; `JobEvent` one row per status
change. Lease expiry is stored as Unix seconds so comparisons behave the same on SQLite (no time
zones) and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loraforge.db.base import Base, UTCDateTime
from loraforge.timestamps import utcnow

JOB_FK = "finetune_jobs.id"


class JobRun(Base):
    """The worker's side of one job: lease, cancel flag, live progress and resume point."""

    __tablename__ = "job_runs"

    job_id: Mapped[str] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int | None] = mapped_column(Integer, default=None)
    total_steps: Mapped[int | None] = mapped_column(Integer, default=None)
    loss: Mapped[float | None] = mapped_column(Float, default=None)
    eta_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer, default=None)
    checkpoint_dir: Mapped[str | None] = mapped_column(String(500), default=None)  # relative to out_dir
    # Unix seconds of the last hand-over to the queue, and how many there were (republishing backs off).
    published_at: Mapped[float | None] = mapped_column(Float, default=None)
    publish_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The dataset report's summary (loraforge.datasets.report.summarize), shown by details.
    dataset: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The sha256 of the uploaded dataset when it was submitted; the worker trains only on that file.
    dataset_sha256: Mapped[str | None] = mapped_column(String(64), default=None)


class JobEvent(Base):
    """One status change of a job, with when it happened and an optional message."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
