"""Ready for replicas sharing one database: one active run per thread held by a partial unique
index, 64-bit integers on PostgreSQL (times past 2038, files past 2 GiB), and PostgreSQL's
full-text index over chunks (SQLite has its FTS5 table since 0004).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen here: a later change to RunStatus must not rewrite what this revision created.
_ACTIVE_RUN = "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _widen_integers(bind)
        op.execute("CREATE INDEX ix_chunks_text ON chunks USING gin (to_tsvector('english', text))")
    op.create_index(
        "ux_runs_one_active",
        "runs",
        ["thread_id"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE_RUN),
        postgresql_where=sa.text(_ACTIVE_RUN),
    )


def downgrade() -> None:
    op.drop_index("ux_runs_one_active", "runs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_chunks_text")


def _widen_integers(bind: sa.Connection) -> None:
    """Every INTEGER column, and the sequence behind each `seq`, to BIGINT."""
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        for column in inspector.get_columns(table):
            if type(column["type"]) is sa.INTEGER:
                op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column["name"]}" TYPE BIGINT')
        sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, 'seq')"), {"t": table}).scalar()
        if sequence is not None:
            op.execute(f"ALTER SEQUENCE {sequence} AS BIGINT")
