"""The store: typed records in SQLite (the default) or PostgreSQL through SQLAlchemy, off the
event loop.

Every public method is a coroutine that runs its SQL in a worker thread. SQLite serialises writers,
and WAL mode lets readers (pollers) proceed while a run writes; PostgreSQL is what several replicas
share (AGENTBOX_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import now
from agentbox.store import tables
from agentbox.store.records import (
    AgentVersionRecord,
    AssistantRecord,
    ChunkRecord,
    ContainerFileRecord,
    ContainerRecord,
    ConversationItemRecord,
    ConversationRecord,
    FileRecord,
    MessageRecord,
    Page,
    ResponseRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    ThreadRecord,
    VectorStoreFileBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)

R = TypeVar("R")
Order = Literal["asc", "desc"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x61676E74626F78  # any fixed key: replicas starting at once migrate one at a time

_TABLE_OF: dict[type[Any], Table] = {
    FileRecord: tables.files,
    AssistantRecord: tables.assistants,
    ThreadRecord: tables.threads,
    MessageRecord: tables.messages,
    RunRecord: tables.runs,
    StepRecord: tables.run_steps,
    ResponseRecord: tables.responses,
    ConversationRecord: tables.conversations,
    ConversationItemRecord: tables.conversation_items,
    ContainerRecord: tables.containers,
    ContainerFileRecord: tables.container_files,
    AgentVersionRecord: tables.agent_versions,
    VectorStoreRecord: tables.vector_stores,
    VectorStoreFileRecord: tables.vector_store_files,
    VectorStoreFileBatchRecord: tables.vector_store_file_batches,
    ChunkRecord: tables.chunks,
}
_NOUN_OF: dict[type[Any], str] = {
    FileRecord: "file",
    AssistantRecord: "assistant",
    ThreadRecord: "thread",
    MessageRecord: "message",
    RunRecord: "run",
    StepRecord: "run step",
    ResponseRecord: "response",
    ConversationRecord: "conversation",
    ConversationItemRecord: "conversation item",
    ContainerRecord: "container",
    ContainerFileRecord: "container file",
    AgentVersionRecord: "agent version",
    VectorStoreRecord: "vector store",
    VectorStoreFileRecord: "vector store file",
    VectorStoreFileBatchRecord: "vector store file batch",
    ChunkRecord: "chunk",
}


def record_row(record: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if isinstance(values.get("status"), RunStatus):
        values["status"] = values["status"].value
    return values


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


def record_from_row(cls: type[R], row: Mapping[str, Any]) -> R:
    names = _field_names(cls)  # dataclasses.fields() per row was a visible share of a run's time
    values = {k: v for k, v in row.items() if k in names}
    if cls is RunRecord:
        values["status"] = RunStatus(values["status"])
    return cls(**values)


class ThreadBusy(Exception):
    """The thread already has an active run: the database's one-active-run index refused another."""


class Store:
    def __init__(self, database: Path | str) -> None:
        """`database`: an SQLite file, or an SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…)."""
        url = make_url(f"sqlite:///{database}" if isinstance(database, Path) else database)
        self.dialect = url.get_backend_name()
        if self.dialect == "sqlite":
            self._sqlite_path = Path(url.database or "")
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self._engine: Engine = create_engine(url)
            event.listen(self._engine, "connect", _sqlite_pragmas)
        else:
            # Room for the worker threads every request and run use at once; dropped connections
            # (a database restart, a failover) are noticed before use rather than as a 500.
            self._engine = create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent). Replicas that start at once take
        turns: a PostgreSQL advisory lock, or a lock file beside the SQLite database."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._sqlite_lock(), self._engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _sqlite_lock(self) -> Iterator[None]:
        if self.dialect != "sqlite":
            yield
            return
        with open(self._sqlite_path.with_name(self._sqlite_path.name + ".migrating"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def close(self) -> None:
        self._engine.dispose()

    async def _run(self, work: Callable[[Connection], R]) -> R:
        def in_thread() -> R:
            with self._engine.begin() as connection:
                return work(connection)

        return await asyncio.to_thread(in_thread)

    # -- generic operations ------------------------------------------------------------------

    async def add(self, record: R) -> R:
        table = _TABLE_OF[type(record)]
        await self._run(lambda c: c.execute(insert(table).values(**record_row(record))))
        return record

    async def get(self, cls: type[R], record_id: str, **scope: str) -> R:
        """The record with this id, or NotFound; `scope` (e.g. thread_id=…) must match too."""
        table = _TABLE_OF[cls]

        def work(c: Connection) -> Mapping[str, Any] | None:
            query = select(table).where(table.c.id == record_id)
            for column, value in scope.items():
                query = query.where(table.c[column] == value)
            row = c.execute(query).mappings().first()
            return dict(row) if row is not None else None

        row = await self._run(work)
        if row is None:
            raise NotFound(f"No {_NOUN_OF[cls]} found with id '{record_id}'.")
        return record_from_row(cls, row)

    async def change(self, cls: type[R], record_id: str, **values: Any) -> R:
        """Update some fields and return the new record (NotFound if it is gone)."""
        table = _TABLE_OF[cls]
        stored = {k: (v.value if isinstance(v, RunStatus) else v) for k, v in values.items()}

        def work(c: Connection) -> Mapping[str, Any] | None:
            c.execute(update(table).where(table.c.id == record_id).values(**stored))
            row = c.execute(select(table).where(table.c.id == record_id)).mappings().first()
            return dict(row) if row is not None else None

        row = await self._run(work)
        if row is None:
            raise NotFound(f"No {_NOUN_OF[cls]} found with id '{record_id}'.")
        return record_from_row(cls, row)

    async def remove(self, cls: type[R], record_id: str) -> None:
        table = _TABLE_OF[cls]
        await self._run(lambda c: c.execute(delete(table).where(table.c.id == record_id)))

    async def remove_all(self, cls: type[R], **where: str) -> None:
        """Delete every matching record (a conversation's items, a container's files)."""
        table = _TABLE_OF[cls]
        query = delete(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        await self._run(lambda c: c.execute(query))

    async def page(
        self,
        cls: type[R],
        *,
        limit: int = 20,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
        **where: str | None,
    ) -> Page[R]:
        """One page of records, newest first by default; `after`/`before` are exclusive id cursors."""
        table = _TABLE_OF[cls]

        def cursor_seq(c: Connection, record_id: str, name: str) -> int:
            seq = c.execute(select(table.c.seq).where(table.c.id == record_id)).scalar()
            if seq is None:
                raise InvalidRequest(
                    f"No {_NOUN_OF[cls]} found with id '{record_id}' for '{name}'.", param=name
                )
            return int(seq)

        def work(c: Connection) -> tuple[list[dict[str, Any]], bool]:
            query = select(table)
            for column, value in where.items():
                if value is not None:
                    query = query.where(table.c[column] == value)
            if after is not None:
                seq = cursor_seq(c, after, "after")
                query = query.where(table.c.seq > seq if order == "asc" else table.c.seq < seq)
            if before is not None:
                seq = cursor_seq(c, before, "before")
                query = query.where(table.c.seq < seq if order == "asc" else table.c.seq > seq)
            # A `before` page is the one just ahead of the cursor: read backwards from it, then flip.
            backwards = before is not None and after is None
            ascending = (order == "asc") != backwards
            query = query.order_by(table.c.seq.asc() if ascending else table.c.seq.desc())
            rows = [dict(r) for r in c.execute(query.limit(limit + 1)).mappings()]
            page = rows[:limit]
            return (page[::-1] if backwards else page), len(rows) > limit

        rows, has_more = await self._run(work)
        return Page([record_from_row(cls, r) for r in rows], has_more)

    async def all(self, cls: type[R], **where: str) -> list[R]:
        """Every matching record, oldest first (for building a model prompt)."""
        table = _TABLE_OF[cls]

        def work(c: Connection) -> list[dict[str, Any]]:
            query = select(table)
            for column, value in where.items():
                query = query.where(table.c[column] == value)
            return [dict(r) for r in c.execute(query.order_by(table.c.seq.asc())).mappings()]

        return [record_from_row(cls, r) for r in await self._run(work)]

    async def add_run(self, run: RunRecord, messages: Sequence[MessageRecord] = ()) -> None:
        """Store a run with the messages it adds to its thread, all or nothing; ThreadBusy when the
        thread already has an active run."""

        def work(c: Connection) -> None:
            for message in messages:
                c.execute(insert(tables.messages).values(**record_row(message)))
            c.execute(insert(tables.runs).values(**record_row(run)))

        try:
            await self._run(work)
        except IntegrityError as exc:
            if _is_one_active_run(exc):
                raise ThreadBusy(run.thread_id) from exc
            raise

    async def active_run(self, thread_id: str) -> RunRecord | None:
        active = [s.value for s in RunStatus if s.is_active]
        table = tables.runs

        def work(c: Connection) -> dict[str, Any] | None:
            query = select(table).where(table.c.thread_id == thread_id, table.c.status.in_(active))
            row = c.execute(query.limit(1)).mappings().first()
            return dict(row) if row is not None else None

        row = await self._run(work)
        return record_from_row(RunRecord, row) if row is not None else None

    # -- replicas and what they own (engine/replicas.py) ----------------------------------------

    async def renew_lease(self, replica_id: str, expires_at: int) -> None:
        """Hold (or release, with a past time) this replica's lease until `expires_at`."""
        table = tables.replicas

        def work(c: Connection) -> None:
            renewed = c.execute(
                update(table).where(table.c.id == replica_id).values(lease_expires_at=expires_at)
            )
            if renewed.rowcount == 0:
                c.execute(insert(table).values(id=replica_id, created_at=now(), lease_expires_at=expires_at))

        await self._run(work)

    async def unowned(self, cls: type[R], statuses: Sequence[str], me: str, *, alone: bool) -> list[R]:
        """Records in these statuses that no live replica owns: their owner's lease ran out, or
        (`alone`: no other replica can share this database) any owner but `me`."""
        table = _TABLE_OF[cls]
        mine = table.c.owner == me
        query = select(table).where(table.c.status.in_(list(statuses)), or_(table.c.owner.is_(None), ~mine))
        if not alone:
            live = select(tables.replicas.c.id).where(tables.replicas.c.lease_expires_at >= now())
            query = query.where(or_(table.c.owner.is_(None), table.c.owner.not_in(live)))

        def work(c: Connection) -> list[dict[str, Any]]:
            return [dict(r) for r in c.execute(query.order_by(table.c.seq)).mappings()]

        return [record_from_row(cls, r) for r in await self._run(work)]

    async def take_over(self, cls: type[R], record_id: str, me: str, previous_owner: str | None) -> bool:
        """Make `me` the owner if `previous_owner` still is: of replicas racing to take over the
        same record, exactly one gets True."""
        table = _TABLE_OF[cls]
        query = (
            update(table)
            .where(table.c.id == record_id, table.c.owner.is_not_distinct_from(previous_owner))
            .values(owner=me)
        )
        return bool(await self._run(lambda c: c.execute(query).rowcount == 1))

    # -- what replicas hand each other (engine/event_journal.py, engine/runs.py) -------------------

    async def append_events(self, rows: Sequence[tuple[str, str, Any]]) -> None:
        """(run or response id, event name, JSON payload) rows, kept in this order."""
        stamp = now()
        values = [{"run_id": r, "created_at": stamp, "name": n, "payload": p} for r, n, p in rows]
        await self._run(lambda c: c.execute(insert(tables.run_events), values))

    async def events_of(self, run_id: str, after_seq: int = 0) -> list[tuple[int, str, Any]]:
        """(seq, name, payload) of the run's events past `after_seq`, in order."""
        table = tables.run_events
        query = (
            select(table.c.seq, table.c.name, table.c.payload)
            .where(table.c.run_id == run_id, table.c.seq > after_seq)
            .order_by(table.c.seq)
        )
        return await self._run(lambda c: [(r.seq, r.name, r.payload) for r in c.execute(query)])

    async def event_count(self, run_id: str) -> int:
        table = tables.run_events
        query = select(func.count()).select_from(table).where(table.c.run_id == run_id)
        return int(await self._run(lambda c: c.execute(query).scalar() or 0))

    async def events_through(self, run_id: str, name: str) -> int:
        """How many of the run's events there are up to its last one called `name` (0: none yet)."""
        table = tables.run_events
        mine = table.c.run_id == run_id
        last = select(func.max(table.c.seq)).where(mine, table.c.name == name).scalar_subquery()
        query = select(func.count()).select_from(table).where(mine, table.c.seq <= last)
        return int(await self._run(lambda c: c.execute(query).scalar() or 0))

    async def drop_events(self, last_name: str, before: int) -> None:
        """Every event of the runs whose `last_name` event is older than `before`."""
        table = tables.run_events
        ended = select(table.c.run_id).where(table.c.name == last_name, table.c.created_at < before)
        await self._run(lambda c: c.execute(delete(table).where(table.c.run_id.in_(ended))))

    async def runs_with_requests(self, owner: str) -> list[RunRecord]:
        """The owner's runs that another replica asked something of: a cancel, or tool outputs."""
        table = tables.runs
        asked = or_(table.c.status == RunStatus.CANCELLING.value, table.c.tool_outputs.is_not(None))
        query = select(table).where(table.c.owner == owner, asked)
        rows = await self._run(lambda c: [dict(r) for r in c.execute(query).mappings()])
        return [record_from_row(RunRecord, r) for r in rows]

    async def hand_over_tool_outputs(self, run_id: str, tool_outputs: dict[str, str]) -> bool:
        """Move a run still waiting in requires_action to in_progress, keeping the outputs for its
        owner; False when it no longer waits (another submission won)."""
        table = tables.runs
        query = (
            update(table)
            .where(table.c.id == run_id, table.c.status == RunStatus.REQUIRES_ACTION.value)
            .values(status=RunStatus.IN_PROGRESS.value, required_action=None, tool_outputs=tool_outputs)
        )
        return bool(await self._run(lambda c: c.execute(query).rowcount == 1))

    async def remove_thread(self, thread_id: str) -> None:
        """Delete a thread with its messages, runs and steps, in one transaction."""

        def work(c: Connection) -> None:
            c.execute(delete(tables.run_steps).where(tables.run_steps.c.thread_id == thread_id))
            c.execute(delete(tables.runs).where(tables.runs.c.thread_id == thread_id))
            c.execute(delete(tables.messages).where(tables.messages.c.thread_id == thread_id))
            c.execute(delete(tables.threads).where(tables.threads.c.id == thread_id))

        await self._run(work)


def _is_one_active_run(exc: IntegrityError) -> bool:
    """PostgreSQL names the index; SQLite names its column ("UNIQUE constraint failed: runs.thread_id")."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return constraint == "ux_runs_one_active" or "runs.thread_id" in str(exc.orig)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
