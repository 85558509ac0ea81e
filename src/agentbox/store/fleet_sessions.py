"""The fleet's sessions table: which Ray node holds each key's sandbox session, the key's own
settings, and its last /mnt/data checkpoint.

Every replica driving the fleet reads and writes these rows, so a placement or a failover is
decided by the database (the primary key and conditional UPDATEs), never by a lock in one process:
of replicas racing to place or move a key, one wins and the others read the winner's row.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import RowMapping, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from agentbox.ids import now
from agentbox.store import tables
from agentbox.store.database import Store

UNPLACED = ""
"""The node of a key that has settings but no session on any node yet."""


@dataclass(frozen=True, slots=True)
class FleetSession:
    key: str
    node: str  # Ray node id (hex); UNPLACED while the key is configured but not placed
    memory_mb: int | None  # the key's own memory cap (a container's tier); None: the node's default
    idle_s: float | None  # the key's own idle time; None: the node's default
    checkpoint_bytes: int | None  # size of the last /mnt/data archive in the object store; None: none
    checkpoint_note: str | None  # why the last cell's files were NOT archived (too big), else None
    restore_reason: str | None  # set by move(): the new node restores the checkpoint and says why
    cells: int  # cells run so far in this key's sessions (counted by checkpointed())
    updated_at: int  # unix seconds


_table = tables.fleet_sessions


class FleetSessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        # Both dialects have INSERT ... ON CONFLICT; SQLAlchemy spells it per dialect.
        self._insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert

    async def get(self, key: str) -> FleetSession | None:
        return await self._store._run(lambda c: _row(c, key))

    async def place(self, key: str, node: str) -> FleetSession:
        """Put the key on `node` unless it is already placed; returns the row as stored, so when two
        replicas race, both get the winner's node. A row with node "" (configured, not placed) is
        placed."""
        stamp = now()
        fresh = (
            self._insert(_table)
            .values(key=key, node=node, cells=0, updated_at=stamp)
            .on_conflict_do_nothing(index_elements=[_table.c.key])
        )
        # A concurrent writer of the same row makes this UPDATE wait and then re-check `node = ''`
        # against the committed row (PostgreSQL), or waits for the database lock (SQLite).
        unplaced = (
            update(_table)
            .where(_table.c.key == key, _table.c.node == UNPLACED)
            .values(node=node, updated_at=stamp)
        )

        def work(c: Connection) -> FleetSession:
            while True:
                c.execute(fresh)
                c.execute(unplaced)
                row = _row(c, key)
                # None only when a remove() committed between these statements (PostgreSQL reads each
                # statement's own snapshot): then the key is free again, so insert it afresh.
                if row is not None:
                    return row

        return await self._store._run(work)

    async def move(self, key: str, old_node: str, new_node: str, reason: str) -> bool:
        """Conditional: only while the row still names old_node (one replica wins a failover). The
        row keeps `reason` until restored(): every replica sending the key a cell meanwhile asks the
        new node to restore first, so none starts the session there without its files."""
        query = (
            update(_table)
            .where(_table.c.key == key, _table.c.node == old_node)
            .values(node=new_node, restore_reason=reason, updated_at=now())
        )
        return bool(await self._store._run(lambda c: c.execute(query).rowcount == 1))

    async def restored(self, key: str, node: str) -> None:
        """A cell ran on `node` after the move there: its session holds the restored files."""
        query = (
            update(_table)
            .where(_table.c.key == key, _table.c.node == node, _table.c.restore_reason.is_not(None))
            .values(restore_reason=None)
        )
        await self._store._run(lambda c: c.execute(query))

    async def configure(self, key: str, memory_mb: int | None, idle_s: float | None) -> None:
        """Upsert the key's settings (creates an unplaced row with node "" when absent)."""
        stamp = now()
        settings = {"memory_mb": memory_mb, "idle_s": idle_s, "updated_at": stamp}
        query = (
            self._insert(_table)
            .values(key=key, node=UNPLACED, cells=0, **settings)
            .on_conflict_do_update(index_elements=[_table.c.key], set_=settings)
        )
        await self._store._run(lambda c: c.execute(query))

    async def checkpointed(self, key: str, size: int | None, note: str | None) -> None:
        """Record the last archive (size None + note: not archived); cells += 1. Nothing happens for
        a key without a row: it was removed while the cell ran, and must not come back."""
        query = (
            update(_table)
            .where(_table.c.key == key)
            .values(checkpoint_bytes=size, checkpoint_note=note, cells=_table.c.cells + 1, updated_at=now())
        )
        await self._store._run(lambda c: c.execute(query))

    async def remove(self, key: str) -> None:
        await self._store._run(lambda c: c.execute(delete(_table).where(_table.c.key == key)))


def _row(c: Connection, key: str) -> FleetSession | None:
    row = c.execute(select(_table).where(_table.c.key == key)).mappings().first()
    return _session(row) if row is not None else None


def _session(row: RowMapping) -> FleetSession:
    return FleetSession(
        key=row["key"],
        node=row["node"],
        memory_mb=row["memory_mb"],
        idle_s=row["idle_s"],
        checkpoint_bytes=row["checkpoint_bytes"],
        checkpoint_note=row["checkpoint_note"],
        restore_reason=row["restore_reason"],
        cells=int(row["cells"]),
        updated_at=int(row["updated_at"]),
    )
