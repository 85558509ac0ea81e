"""Vector store files' ingestion in the background: extract, chunk, embed, index, then mark done.

Each attached file gets one task. Extraction and chunking are CPU work and run in a thread; the
chunks are indexed, and a last transaction marks the file completed only if it is still wanted
(still attached and still in_progress): a file deleted or a batch cancelled meanwhile leaves no
chunks behind, whatever order the two happen in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from agentbox.engine.replicas import Replica
from agentbox.errors import NotFound
from agentbox.ids import new_id, now
from agentbox.retrieval import chunking, extract, index
from agentbox.retrieval.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP
from agentbox.retrieval.embeddings import Embedder
from agentbox.store import tables
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import ChunkRecord, FileRecord, VectorStoreFileRecord

log = logging.getLogger(__name__)

CONCURRENCY = 4
"""Files ingested at once; the rest wait their turn (and can still be cancelled)."""


def static_sizes(strategy: dict[str, Any]) -> tuple[int, int]:
    static = strategy.get("static") or {}
    return (
        int(static.get("max_chunk_size_tokens", DEFAULT_MAX_TOKENS)),
        int(static.get("chunk_overlap_tokens", DEFAULT_OVERLAP)),
    )


class Ingestor:
    def __init__(self, store: Store, blobs: BlobStore, embedder: Embedder | None, replica: Replica) -> None:
        self._store = store
        self.replica = replica
        self._blobs = blobs
        self._embedder = embedder
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    def submit(self, record: VectorStoreFileRecord) -> None:
        task = asyncio.create_task(self._ingest(record), name=f"agentbox-ingest-{record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self) -> None:
        """Files a crash left in_progress: their partial chunks go and they are ingested again."""
        for record in await self.replica.take_over(VectorStoreFileRecord, ["in_progress"]):
            await index.remove_chunks(self._store, record.vector_store_id, record.file_id)
            self.submit(record)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_changed(self, timeout_s: float) -> None:
        """Return when some file finished ingesting, or after timeout_s."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)

    async def _ingest(self, record: VectorStoreFileRecord) -> None:
        try:
            async with self._slots:
                await self._run(record)
        except asyncio.CancelledError:
            raise  # shutdown: the file stays in_progress and is ingested again at the next start
        except Exception:
            log.exception("ingesting %s into %s failed", record.file_id, record.vector_store_id)
            await self._fail(record, "server_error", "The server failed to process this file.")
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _run(self, record: VectorStoreFileRecord) -> None:
        if await self._status(record.id) != "in_progress":
            return  # cancelled or detached while it waited for a slot
        try:
            file = await self._store.get(FileRecord, record.file_id)
        except NotFound:
            await self._fail(record, "invalid_file", f"File '{record.file_id}' was deleted.")
            return
        path = await self._blobs.local_path(file.path)
        try:
            text = await asyncio.to_thread(extract.extract_text, file.filename, Path(path))
        except extract.UnreadableFile as exc:
            await self._fail(record, exc.code, exc.message)
            return
        max_tokens, overlap = static_sizes(record.chunking_strategy)
        pieces = await asyncio.to_thread(chunking.chunk_text, text, max_tokens, overlap)
        if not pieces:
            await self._fail(record, "invalid_file", f"'{file.filename}' contains no text to search.")
            return
        counts = await asyncio.to_thread(lambda: [chunking.count_tokens(p) for p in pieces])
        vectors = await self._embed(pieces)
        created = now()
        chunks = [
            ChunkRecord(
                id=new_id("chunk_"),
                created_at=created,
                vector_store_id=record.vector_store_id,
                file_id=record.file_id,
                position=position,
                text=piece,
                tokens=counts[position],
                embedding=vectors[position] if vectors else None,
            )
            for position, piece in enumerate(pieces)
        ]
        await index.add_chunks(self._store, chunks)
        usage = len(text.encode())
        if not await self._finish(record.id, [c.id for c in chunks], usage):
            log.info("%s left %s while it was ingested", record.file_id, record.vector_store_id)

    async def _embed(self, pieces: list[str]) -> list[list[float]] | None:
        """Vectors for the chunks; without them (no endpoint, or it failed) full text still ranks."""
        if self._embedder is None:
            return None
        try:
            return await self._embedder.embed(pieces)
        except Exception as exc:
            log.warning("embeddings endpoint failed, the file is indexed for full text only: %s", exc)
            return None

    async def _status(self, record_id: str) -> str | None:
        table = tables.vector_store_files

        def work(c: Connection) -> str | None:
            value = c.execute(select(table.c.status).where(table.c.id == record_id)).scalar()
            return str(value) if value is not None else None

        return await self._store._run(work)

    async def _finish(self, record_id: str, chunk_ids: list[str], usage: int) -> bool:
        """Mark the file completed if it is still wanted; else drop the chunks just added."""
        files, chunks = tables.vector_store_files, tables.chunks

        def work(c: Connection) -> bool:
            wanted = c.execute(
                update(files)
                .where(files.c.id == record_id, files.c.status == "in_progress")
                .values(status="completed", usage_bytes=usage, last_error=None)
            ).rowcount
            if not wanted:
                for start in range(0, len(chunk_ids), 500):
                    c.execute(delete(chunks).where(chunks.c.id.in_(chunk_ids[start : start + 500])))
            return bool(wanted)

        return await self._store._run(work)

    async def _fail(self, record: VectorStoreFileRecord, code: str, message: str) -> None:
        files = tables.vector_store_files
        error = {"code": code, "message": message}

        def work(c: Connection) -> None:
            c.execute(
                update(files)
                .where(files.c.id == record.id, files.c.status == "in_progress")
                .values(status="failed", last_error=error)
            )

        await self._store._run(work)
