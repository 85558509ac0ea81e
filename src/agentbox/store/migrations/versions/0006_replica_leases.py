"""Replicas and their leases: each server holds a lease it renews, and marks the runs, responses
and file ingestions it works on as its own, so that a peer takes over only the work of a replica
whose lease ran out.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OWNED = ("runs", "responses", "vector_store_files")


def upgrade() -> None:
    wide = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "replicas",
        sa.Column("seq", wide, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), unique=True, nullable=False),
        sa.Column("created_at", wide, nullable=False),
        sa.Column("lease_expires_at", wide, nullable=False),
    )
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("owner", sa.String(64)))
        op.create_index(f"ix_{table}_status_owner", table, ["status", "owner"])


def downgrade() -> None:
    for table in _OWNED:
        op.drop_index(f"ix_{table}_status_owner", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner")
    op.drop_table("replicas")
