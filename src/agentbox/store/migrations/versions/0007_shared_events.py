"""What replicas hand each other through the database: the events of every run and response (so a
client streams from any replica), and tool outputs submitted to a replica that doesn't run the run.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    wide = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "run_events",
        sa.Column("seq", wide, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", wide, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_run_events_run", "run_events", ["run_id", "seq"])
    op.create_index("ix_run_events_done", "run_events", ["name", "created_at"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("tool_outputs", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("tool_outputs")
    op.drop_table("run_events")
