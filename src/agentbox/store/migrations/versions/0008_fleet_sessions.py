"""The fleet's sessions: which Ray node holds each key's sandbox session, the key's own settings
(memory cap, idle time) and its last /mnt/data checkpoint, shared by every replica that drives the
fleet.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    wide = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "fleet_sessions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("memory_mb", wide),
        sa.Column("idle_s", sa.Float),
        sa.Column("checkpoint_bytes", wide),
        sa.Column("checkpoint_note", sa.Text),
        sa.Column("restore_reason", sa.Text),
        sa.Column("cells", wide, nullable=False),
        sa.Column("updated_at", wide, nullable=False),
    )
    op.create_index("ix_fleet_sessions_node", "fleet_sessions", ["node"])


def downgrade() -> None:
    op.drop_table("fleet_sessions")
