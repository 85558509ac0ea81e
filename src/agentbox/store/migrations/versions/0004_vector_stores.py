"""Vector stores, their files and file batches, the chunks file_search ranks (with an FTS5 index on
SQLite), and the vector stores assistants and threads give their tools.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
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
    for table in ("assistants", "threads"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("search_store_ids", sa.JSON, nullable=False, server_default="[]"))
            batch.add_column(sa.Column("code_store_ids", sa.JSON, nullable=False, server_default="[]"))
    _base(
        "vector_stores",
        sa.Column("name", sa.Text),
        sa.Column("last_active_at", sa.Integer),
        sa.Column("expires_after", sa.JSON),
        sa.Column("expires_at", sa.Integer),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("chunking_strategy", sa.JSON, nullable=False),
        sa.Column("thread_id", sa.String(64)),
    )
    _base(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("usage_bytes", sa.Integer, nullable=False),
        sa.Column("last_error", sa.JSON),
        sa.Column("chunking_strategy", sa.JSON, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("batch_id", sa.String(64)),
    )
    op.create_index(
        "ux_vector_store_files", "vector_store_files", ["vector_store_id", "file_id"], unique=True
    )
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])
    _base(
        "vector_store_file_batches",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_ids", sa.JSON, nullable=False),
    )
    _base(
        "chunks",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("embedding", sa.JSON),
    )
    op.create_index("ix_chunks_store_file", "chunks", ["vector_store_id", "file_id", "position"])
    if op.get_bind().dialect.name == "sqlite":
        # External content: the text is stored once, in chunks; triggers keep the index in step.
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5("
            "text, content='chunks', content_rowid='seq', tokenize='porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN "
            "INSERT INTO chunks_fts(rowid, text) VALUES (new.seq, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN "
            "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.seq, old.text); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    for name in ("chunks", "vector_store_file_batches", "vector_store_files", "vector_stores"):
        op.drop_table(name)
    for table in ("assistants", "threads"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("code_store_ids")
            batch.drop_column("search_store_ids")
