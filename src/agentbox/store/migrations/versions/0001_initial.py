"""Initial schema: files, assistants, threads, messages, runs, run steps.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
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
        "files",
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
    )
    _base(
        "assistants",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("instructions", sa.Text),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("file_ids", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("response_format", sa.JSON),
    )
    _base(
        "threads",
        sa.Column("file_ids", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
    )
    _base(
        "messages",
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attachments", sa.JSON, nullable=False),
        sa.Column("assistant_id", sa.String(64)),
        sa.Column("run_id", sa.String(64)),
        sa.Column("completed_at", sa.Integer),
        sa.Column("incomplete_at", sa.Integer),
        sa.Column("incomplete_reason", sa.String(32)),
        sa.Column("metadata", sa.JSON, nullable=False),
    )
    op.create_index("ix_messages_thread", "messages", ["thread_id", "seq"])
    _base(
        "runs",
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Integer),
        sa.Column("expires_at", sa.Integer),
        sa.Column("cancelled_at", sa.Integer),
        sa.Column("failed_at", sa.Integer),
        sa.Column("completed_at", sa.Integer),
        sa.Column("last_error", sa.JSON),
        sa.Column("usage", sa.JSON),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
    )
    op.create_index("ix_runs_thread", "runs", ["thread_id", "seq"])
    _base(
        "run_steps",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("assistant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("completed_at", sa.Integer),
        sa.Column("failed_at", sa.Integer),
        sa.Column("cancelled_at", sa.Integer),
        sa.Column("last_error", sa.JSON),
        sa.Column("usage", sa.JSON),
    )
    op.create_index("ix_steps_run", "run_steps", ["run_id", "seq"])


def downgrade() -> None:
    for name in ("run_steps", "runs", "messages", "threads", "assistants", "files"):
        op.drop_table(name)
