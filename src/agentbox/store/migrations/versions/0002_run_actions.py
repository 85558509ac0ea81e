"""Runs remember the function calls they wait on and why they ended incomplete.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("required_action", sa.JSON))
        batch.add_column(sa.Column("incomplete_reason", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("incomplete_reason")
        batch.drop_column("required_action")
