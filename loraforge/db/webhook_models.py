"""Tables of webhooks: endpoints, the outbox of messages to send, and the log of delivery attempts.

`Webhook` has one row per registered endpoint (one active per user); `WebhookMessage` one row per
message to send (the outbox, written in the same transaction as the status change it reports);
`WebhookDispatch` one row per delivery attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from loraforge.db.base import Base, UTCDateTime
from loraforge.timestamps import utcnow

JOB_FK = "finetune_jobs.id"


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
    # The first 1 KB of a non-2xx answer, as text with URLs redacted: the receiver's own reason.
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
