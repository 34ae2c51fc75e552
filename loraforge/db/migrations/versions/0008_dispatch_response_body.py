"""webhook_dispatches.response_body: the first 1 KB of a failed attempt's answer, as redacted text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_dispatches", sa.Column("response_body", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_dispatches") as batch:
        batch.drop_column("response_body")
