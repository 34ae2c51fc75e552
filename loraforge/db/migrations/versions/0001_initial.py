"""Initial schema: users, api_keys (sha256 only), uploads, finetune_jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loraforge.db.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_ts", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_ts", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(512), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_ts", UTCDateTime(), nullable=False),
        sa.Column("completed_ts", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_uploads_user_id", "uploads", ["user_id"])
    op.create_table(
        "finetune_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data_source_path", sa.Text(), nullable=False),
        sa.Column("instance_prompt", sa.Text(), nullable=False),
        sa.Column("trigger_word", sa.String(200), nullable=False),
        sa.Column("base_model", sa.String(32), nullable=False),
        sa.Column("theme", sa.String(200), nullable=True),
        sa.Column("machine_type", sa.String(64), nullable=False),
        sa.Column("train_type", sa.String(32), nullable=False),
        sa.Column("segmind_public", sa.Boolean(), nullable=False),
        sa.Column("advance_parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("slug", sa.String(255), nullable=False, unique=True),
        sa.Column("cloud_storage_url", sa.Text(), nullable=True),
        sa.Column("segmind_model_path", sa.Text(), nullable=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("upload_id", sa.String(36), sa.ForeignKey("uploads.id"), nullable=True),
        sa.Column("model_information", sa.JSON(), nullable=False),
        sa.Column("created_ts", UTCDateTime(), nullable=False),
        sa.Column("updated_ts", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_finetune_jobs_status", "finetune_jobs", ["status"])
    op.create_index("ix_finetune_jobs_user_created", "finetune_jobs", ["user_id", "created_ts", "id"])


def downgrade() -> None:
    op.drop_table("finetune_jobs")
    op.drop_table("uploads")
    op.drop_table("api_keys")
    op.drop_table("users")
