"""Drop four columns that were written and never read.

job_runs.attempts (a count of lease acquisitions; the child processes of a job are counted in memory,
bounded by LORAFORGE_JOB_MAX_ATTEMPTS), job_runs.lora_sha256 (the same hash details already shows as
model_information.sha256), uploads.completed_ts (the upload's size says it arrived) and
uploads.public (the ACL is signed into the pre-signed link, and the store keeps it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loraforge.db.base import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite drops a column by copying the table
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lora_sha256")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("completed_ts")
        batch.drop_column("public")


def downgrade() -> None:
    # NOT NULL columns come back on existing rows through a server default, dropped afterwards
    # so the schema is again exactly what 0001 and 0002 made.
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lora_sha256", sa.String(64), nullable=True))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("completed_ts", UTCDateTime(), nullable=True))
    with op.batch_alter_table("job_runs") as batch:
        batch.alter_column("attempts", server_default=None)
    with op.batch_alter_table("uploads") as batch:
        batch.alter_column("public", server_default=None)
