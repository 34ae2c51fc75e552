"""The tables of loraforge: users, their API keys (sha256 only), uploads and fine-tune jobs.

Column names follow the seed API's field names wherever the seeds name one, so rendering a row is a
rename-free copy. Ids are UUID strings (the seeds' `request_id` / `finetune_id`). The job pipeline
adds its own columns (leases, progress, webhooks) in later migrations; this module holds the
columns that migration 0001 creates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loraforge.db.base import Base, UTCDateTime
from loraforge.timestamps import utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """One key of a user; only its sha256 is stored, so a leaked database leaks no key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell keys apart in listings
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # migration 0003: written at most once a minute (KEY_USE_RESOLUTION_S), so auth stays a read
    last_used_ts: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_ts: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Upload(Base):
    """A dataset slot handed out by the pre-signed-URL endpoint; `key` is its object-store key."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str] = mapped_column(String(16))
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FineTuneJob(Base):
    """One fine-tune request, from REQUESTED to AVAILABLE / FAILED / CANCELLED."""

    __tablename__ = "finetune_jobs"
    __table_args__ = (Index("ix_finetune_jobs_user_created", "user_id", "created_ts", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    data_source_path: Mapped[str] = mapped_column(Text)
    instance_prompt: Mapped[str] = mapped_column(Text)
    trigger_word: Mapped[str] = mapped_column(String(200))
    base_model: Mapped[str] = mapped_column(String(32))
    theme: Mapped[str | None] = mapped_column(String(200), nullable=True)
    machine_type: Mapped[str] = mapped_column(String(64))
    train_type: Mapped[str] = mapped_column(String(32))
    segmind_public: Mapped[bool] = mapped_column(Boolean, default=False)
    advance_parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), index=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True)
    cloud_storage_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    segmind_model_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_type: Mapped[str] = mapped_column(String(32))
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id"), nullable=True)
    model_information: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
