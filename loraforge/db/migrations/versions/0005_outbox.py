"""Webhook outbox and submit publishing: webhook_messages, why a webhook was disabled, where a
dispatch was redirected, and when a job was last handed to the queue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loraforge.db.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("webhook_id", sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("finetune_jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(250), nullable=True),
        sa.Column("claim_expires_at", sa.Float(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_webhook_messages_due", "webhook_messages", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_messages_webhook_id", "webhook_messages", ["webhook_id"])
    op.create_index("ix_webhook_messages_job_id", "webhook_messages", ["job_id"])
    op.add_column("webhooks", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.add_column("webhooks", sa.Column("failing_since", sa.Float(), nullable=True))
    op.add_column("webhook_dispatches", sa.Column("location", sa.Text(), nullable=True))
    op.add_column("job_runs", sa.Column("published_at", sa.Float(), nullable=True))
    op.add_column("job_runs", sa.Column("publish_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("publish_count")
        batch.drop_column("published_at")
    with op.batch_alter_table("webhook_dispatches") as batch:
        batch.drop_column("location")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("disabled_reason")
    op.drop_table("webhook_messages")
