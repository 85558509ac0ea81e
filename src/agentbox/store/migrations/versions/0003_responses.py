"""The Responses generation: responses, conversations and their items, containers and their files,
and Foundry agent versions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _base(name: str, *columns: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        name,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), unique=True, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        *columns,
    )


def upgrade() -> None:
    _base(
        "responses",
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("input_items", sa.JSON, nullable=False),
        sa.Column("previous_response_id", sa.String(64)),
        sa.Column("conversation_id", sa.String(64)),
    )
    _base("conversations", sa.Column("metadata", sa.JSON, nullable=False))
    _base(
        "conversation_items",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_conversation_items_conversation", "conversation_items", ["conversation_id", "seq"])
    _base(
        "containers",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_active_at", sa.Integer, nullable=False),
        sa.Column("expires_after_minutes", sa.Integer, nullable=False),
        sa.Column("memory_limit", sa.String(8), nullable=False),
    )
    _base(
        "container_files",
        sa.Column("container_id", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("blob", sa.Text, nullable=False),
    )
    op.create_index("ix_container_files_container", "container_files", ["container_id", "seq"])
    _base(
        "agent_versions",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
    )
    op.create_index("ix_agent_versions_name", "agent_versions", ["name", "seq"])


def downgrade() -> None:
    for name in ("agent_versions", "container_files", "containers", "conversation_items", "conversations"):
        op.drop_table(name)
    op.drop_table("responses")
