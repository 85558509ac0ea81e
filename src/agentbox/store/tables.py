"""The SQL schema (SQLAlchemy Core); migrations/ creates and evolves it."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, text

from agentbox.store.records import RunStatus

# Times in seconds and sizes in bytes outgrow 32 bits (2038, files past 2 GiB): BIGINT on
# PostgreSQL (migration 0005). SQLite's INTEGER is 64-bit already, and only `INTEGER PRIMARY KEY`
# is its rowid alias, so SQLite keeps INTEGER.
Wide = BigInteger().with_variant(Integer(), "sqlite")

ACTIVE_RUN = "status IN ({})".format(", ".join(f"'{s.value}'" for s in RunStatus if s.is_active))
"""RunStatus.is_active in SQL: the rows the one-active-run index covers."""

metadata = MetaData()

# Every table has an autoincrement `seq`: created_at has one-second resolution, and list order and
# cursors must be exact even for objects made in the same second.

files = Table(
    "files",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("filename", Text, nullable=False),
    Column("size", Wide, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("path", Text, nullable=False),
)

assistants = Table(
    "assistants",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("model", Text, nullable=False),
    Column("name", Text),
    Column("description", Text),
    Column("instructions", Text),
    Column("tools", JSON, nullable=False),
    Column("file_ids", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("temperature", Float),
    Column("top_p", Float),
    Column("response_format", JSON),
    Column("search_store_ids", JSON, nullable=False, default=list),
    Column("code_store_ids", JSON, nullable=False, default=list),
)

threads = Table(
    "threads",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("file_ids", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("search_store_ids", JSON, nullable=False, default=list),
    Column("code_store_ids", JSON, nullable=False, default=list),
)

messages = Table(
    "messages",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("thread_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attachments", JSON, nullable=False),
    Column("assistant_id", String(64)),
    Column("run_id", String(64)),
    Column("completed_at", Wide),
    Column("incomplete_at", Wide),
    Column("incomplete_reason", String(32)),
    Column("metadata", JSON, nullable=False),
    Index("ix_messages_thread", "thread_id", "seq"),
)

runs = Table(
    "runs",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("thread_id", String(64), nullable=False),
    Column("assistant_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", Text, nullable=False),
    Column("instructions", Text, nullable=False),
    Column("tools", JSON, nullable=False),
    Column("started_at", Wide),
    Column("expires_at", Wide),
    Column("cancelled_at", Wide),
    Column("failed_at", Wide),
    Column("completed_at", Wide),
    Column("last_error", JSON),
    Column("usage", JSON),
    Column("metadata", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("required_action", JSON),
    Column("incomplete_reason", String(32)),
    Index("ix_runs_thread", "thread_id", "seq"),
    # One active run per thread, held by the database so that replicas sharing it agree (0005).
    Index(
        "ux_runs_one_active",
        "thread_id",
        unique=True,
        sqlite_where=text(ACTIVE_RUN),
        postgresql_where=text(ACTIVE_RUN),
    ),
    Column("owner", String(64)),  # the replica working on it (0006)
    # submitted to another replica, for the owner to resume with (0007); SQL NULL when there are none
    Column("tool_outputs", JSON(none_as_null=True)),
    Index("ix_runs_status_owner", "status", "owner"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("thread_id", String(64), nullable=False),
    Column("assistant_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("details", JSON, nullable=False),
    Column("completed_at", Wide),
    Column("failed_at", Wide),
    Column("cancelled_at", Wide),
    Column("last_error", JSON),
    Column("usage", JSON),
    Index("ix_steps_run", "run_id", "seq"),
)

# --- the Responses generation ----------------------------------------------------------------

responses = Table(
    "responses",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("status", String(16), nullable=False),
    Column("data", JSON, nullable=False),
    Column("input_items", JSON, nullable=False),
    Column("previous_response_id", String(64)),
    Column("conversation_id", String(64)),
    Column("owner", String(64)),  # the replica working on it (0006)
    Index("ix_responses_status_owner", "status", "owner"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("metadata", JSON, nullable=False),
)

conversation_items = Table(
    "conversation_items",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("conversation_id", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_conversation_items_conversation", "conversation_id", "seq"),
)

containers = Table(
    "containers",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_active_at", Wide, nullable=False),
    Column("expires_after_minutes", Wide, nullable=False),
    Column("memory_limit", String(8), nullable=False),
)

container_files = Table(
    "container_files",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("container_id", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("bytes", Wide, nullable=False),
    Column("source", String(16), nullable=False),
    Column("blob", Text, nullable=False),
    Index("ix_container_files_container", "container_id", "seq"),
)

agent_versions = Table(
    "agent_versions",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("name", String(63), nullable=False),
    Column("version", String(16), nullable=False),
    Column("description", Text),
    Column("metadata", JSON, nullable=False),
    Column("definition", JSON, nullable=False),
    Index("ix_agent_versions_name", "name", "seq"),
)

vector_stores = Table(
    "vector_stores",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("name", Text),
    Column("last_active_at", Wide),
    Column("expires_after", JSON),
    Column("expires_at", Wide),
    Column("metadata", JSON, nullable=False),
    Column("chunking_strategy", JSON, nullable=False),
    Column("thread_id", String(64)),
)

vector_store_files = Table(
    "vector_store_files",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("usage_bytes", Wide, nullable=False),
    Column("last_error", JSON),
    Column("chunking_strategy", JSON, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("batch_id", String(64)),
    Index("ux_vector_store_files", "vector_store_id", "file_id", unique=True),
    Index("ix_vector_store_files_batch", "batch_id"),
    Column("owner", String(64)),  # the replica working on it (0006)
    Index("ix_vector_store_files_status_owner", "status", "owner"),
)

vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("vector_store_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("file_ids", JSON, nullable=False),
)

# Full-text search over `text` lives in chunks_fts, an SQLite FTS5 table with chunks as its
# external content (migration 0004); it is not declared here because SQLAlchemy Core has no FTS5.
chunks = Table(
    "chunks",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("vector_store_id", String(64), nullable=False),
    Column("file_id", String(64), nullable=False),
    Column("position", Wide, nullable=False),
    Column("text", Text, nullable=False),
    Column("tokens", Wide, nullable=False),
    Column("embedding", JSON),
    Index("ix_chunks_store_file", "vector_store_id", "file_id", "position"),
)

# Each server's lease (0006): a row it renews while it lives; what a replica owns is taken over by
# a peer only once its lease_expires_at has passed.
replicas = Table(
    "replicas",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("lease_expires_at", Wide, nullable=False),
)

# The events of runs and responses, written by the replica running them (engine/event_journal.py)
# when replicas share the database, so that a client streams from any replica (0007).
run_events = Table(
    "run_events",
    metadata,
    Column("seq", Wide, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("created_at", Wide, nullable=False),
    Column("name", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_run_events_run", "run_id", "seq"),
    Index("ix_run_events_done", "name", "created_at"),
)

# Which fleet node holds each key's sandbox session, with the key's own settings and its last
# /mnt/data checkpoint (0008, store/fleet_sessions.py). node is "" while a key is configured but
# not yet placed; replicas agree on a placement through the primary key, not a lock.
fleet_sessions = Table(
    "fleet_sessions",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("memory_mb", Wide),
    Column("idle_s", Float),
    Column("checkpoint_bytes", Wide),
    Column("checkpoint_note", Text),
    Column("restore_reason", Text),
    Column("cells", Wide, nullable=False),
    Column("updated_at", Wide, nullable=False),
    Index("ix_fleet_sessions_node", "node"),
)
