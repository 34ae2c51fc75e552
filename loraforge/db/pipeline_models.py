"""Tables of the job pipeline and webhooks: runs (lease, cancel flag, progress), events, webhooks, dispatches.

They sit beside the foundation's `FineTuneJob` rather than inside it so that the pipeline's
bookkeeping (who holds a job, how far training got, where the last checkpoint is) can change
without touching the request model. `JobRun` has one row per job; `JobEvent` one row per status
change; `Webhook` one row per registered endpoint (one active per user); `WebhookMessage` one row
per message to send (the outbox, written with the status change it reports); `WebhookDispatch` one
row per delivery attempt. Lease expiry is stored as Unix seconds so comparisons behave the same on
SQLite (no time zones) and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from loraforge.db.base import Base, UTCDateTime, utcnow

JOB_FK = "finetune_jobs.id"


class JobRun(Base):
    """The worker's side of one job: lease, cancel flag, live progress and resume point."""

    __tablename__ = "job_runs"

    job_id: Mapped[str] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int | None] = mapped_column(Integer, default=None)
    total_steps: Mapped[int | None] = mapped_column(Integer, default=None)
    loss: Mapped[float | None] = mapped_column(Float, default=None)
    eta_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer, default=None)
    checkpoint_dir: Mapped[str | None] = mapped_column(String(500), default=None)  # relative to out_dir
    lora_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
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


class Webhook(Base):
    """A user's webhook endpoint, its signing secret and the statuses it subscribes to."""

    __tablename__ = "webhooks"
    __table_args__ = (
        Index("uq_webhooks_user_active", "user_id", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Why the service turned it off (410 Gone, failing for days); None while active or turned off by its owner.
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    failing_since: Mapped[float | None] = mapped_column(Float, default=None)  # Unix s of the first failure in a row


class WebhookMessage(Base):
    """One message of the outbox: what to send where, and how its delivery stands.

    `state` is PENDING until it ends DELIVERED, FAILED (retries spent, or a permanent redirect),
    DISABLED (the receiver answered 410) or DROPPED (the webhook was turned off first). A
    dispatcher claims a PENDING row by writing `claimed_by` and a `claim_expires_at` (Unix s) that
    outlives one attempt; a claim left by a dead dispatcher expires and another takes the row.
    """

    __tablename__ = "webhook_messages"
    __table_args__ = (Index("ix_webhook_messages_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # the webhook-id header, every attempt
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey(JOB_FK, ondelete="CASCADE"), default=None, index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    claimed_by: Mapped[str | None] = mapped_column(String(250), default=None)
    claim_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WebhookDispatch(Base):
    """One delivery attempt of one message to one webhook (the dispatch log)."""

    __tablename__ = "webhook_dispatches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)  # None for test sends
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    location: Mapped[str | None] = mapped_column(Text, default=None)  # where a 3xx pointed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
