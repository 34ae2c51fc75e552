"""Training artifacts: job_artifacts (sample images, intermediate LoRAs) and loss_points.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loraforge.db.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JOB_FK = "finetune_jobs.id"


def upgrade() -> None:
    op.create_table(
        "job_artifacts",
        sa.Column("job_id", sa.String(36), sa.ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "loss_points",
        sa.Column("job_id", sa.String(36), sa.ForeignKey(JOB_FK, ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("loss", sa.Float(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.Column("step_seconds", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("loss_points")
    op.drop_table("job_artifacts")
