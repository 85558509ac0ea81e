"""The SQL the vector store service needs beyond the Store's generic operations: files counted by
status per store or batch, filenames by id, a file's chunks in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from agentbox.store import tables
from agentbox.store.database import Store

STATUSES = ("in_progress", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled


async def filenames(store: Store, file_ids: set[str]) -> dict[str, str]:
    if not file_ids:
        return {}
    files = tables.files
    wanted = list(file_ids)

    def work(c: Connection) -> dict[str, str]:
        query = select(files.c.id, files.c.filename).where(files.c.id.in_(wanted))
        return {str(row.id): str(row.filename) for row in c.execute(query)}

    return await store._run(work)


async def counts(store: Store, column: str, keys: Sequence[str]) -> dict[str, tuple[FileCounts, int]]:
    """Per store (or batch): its files by status, and the bytes its completed files use."""
    files = tables.vector_store_files
    wanted = list(keys)

    def work(c: Connection) -> dict[str, tuple[FileCounts, int]]:
        key = files.c[column]
        query = (
            select(key, files.c.status, func.count(), func.coalesce(func.sum(files.c.usage_bytes), 0))
            .where(key.in_(wanted))
            .group_by(key, files.c.status)
        )
        tallies: dict[str, dict[str, int]] = {}
        usage: dict[str, int] = {}
        for owner, status, count, used in c.execute(query):
            tallies.setdefault(owner, {})[status] = int(count)
            usage[owner] = usage.get(owner, 0) + (int(used) if status == "completed" else 0)
        return {
            owner: (FileCounts(**{s: t.get(s, 0) for s in STATUSES}), usage[owner])
            for owner, t in tallies.items()
        }

    return await store._run(work) if wanted else {}


async def chunk_texts(store: Store, store_id: str, file_id: str) -> list[str]:
    chunks = tables.chunks

    def work(c: Connection) -> list[str]:
        query = (
            select(chunks.c.text)
            .where(chunks.c.vector_store_id == store_id, chunks.c.file_id == file_id)
            .order_by(chunks.c.position)
        )
        return [str(text) for text in c.execute(query).scalars()]

    return await store._run(work)
