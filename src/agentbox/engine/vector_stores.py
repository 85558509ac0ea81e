"""Vector stores: their statuses and expiry, and the search over them.

VectorStoreService is the engine's Searcher (engine/surface.py): the agent loop's file_search
calls and POST /vector_stores/{id}/search both come here. A store's files are `service.files`
(engine/vector_store_files.py), its file batches `service.batches` (engine/vector_store_batches.py).
Ingestion runs in the background (engine/ingestion.py); statuses and counts are computed from the
files' rows when read, so they can never disagree with them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentbox.engine import vector_store_checks as checks
from agentbox.engine import vector_store_queries as queries
from agentbox.engine.ingestion import Ingestor
from agentbox.engine.replicas import Replica
from agentbox.engine.vector_store_batches import StoreBatches
from agentbox.engine.vector_store_files import StoreFiles
from agentbox.engine.vector_store_queries import FileCounts
from agentbox.errors import InvalidRequest
from agentbox.ids import new_id, now
from agentbox.retrieval import filters as attribute_filters
from agentbox.retrieval import index, search
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.results import SearchRequest, SearchResult
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Order, Store
from agentbox.store.records import (
    Page,
    VectorStoreFileBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)

DAY_S = 86_400
THREAD_STORE_EXPIRY = {"anchor": "last_active_at", "days": 7}


@dataclass(frozen=True, slots=True)
class StoreView:
    record: VectorStoreRecord
    status: str
    file_counts: FileCounts
    usage_bytes: int


class VectorStoreService:
    def __init__(self, store: Store, blobs: BlobStore, embedder: Embedder | None, replica: Replica) -> None:
        self._store = store
        self._embedder = embedder
        self._ingestor = Ingestor(store, blobs, embedder, replica)
        self.files = StoreFiles(store, self._ingestor)
        self.batches = StoreBatches(store, self.files)
        self._thread_lock = asyncio.Lock()

    async def start(self) -> None:
        await self.recover()

    async def recover(self) -> None:
        """Ingest again the files whose server stopped while it ingested them."""
        await self._ingestor.recover()

    async def aclose(self) -> None:
        await self._ingestor.aclose()
        if self._embedder is not None:
            await self._embedder.aclose()

    # -- stores ---------------------------------------------------------------------------------

    async def create(
        self,
        name: str | None = None,
        file_ids: Sequence[str] = (),
        expires_after: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        thread_id: str | None = None,
    ) -> VectorStoreRecord:
        expiry = checks.expires_after(expires_after)
        strategy = checks.chunking(chunking_strategy)
        await self.files.check_exist(file_ids, "file_ids")
        created = now()
        record = await self._store.add(
            VectorStoreRecord(
                id=new_id("vs_"),
                created_at=created,
                name=name,
                last_active_at=created,
                expires_after=expiry,
                expires_at=_expires_at(expiry, created),
                metadata=metadata or {},
                chunking_strategy=strategy or {},
                thread_id=thread_id,
            )
        )
        for file_id in dict.fromkeys(file_ids):
            await self.files.attach(record, file_id, strategy, {}, None)
        return record

    async def retrieve(self, store_id: str) -> StoreView:
        return (await self._views([await self._store.get(VectorStoreRecord, store_id)]))[0]

    async def update(self, store_id: str, **changes: Any) -> StoreView:
        """Change name, metadata and expires_after (None removes the expiry); others are ignored."""
        record = await self._store.get(VectorStoreRecord, store_id)
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = changes["name"]
        if changes.get("metadata") is not None:
            values["metadata"] = changes["metadata"]
        if "expires_after" in changes:
            expiry = checks.expires_after(changes["expires_after"])
            values["expires_after"] = expiry
            values["expires_at"] = _expires_at(expiry, record.last_active_at or record.created_at)
        if values:
            await self._store.change(VectorStoreRecord, store_id, **values)
        return await self.retrieve(store_id)

    async def list_stores(
        self, *, limit: int, order: Order, after: str | None, before: str | None
    ) -> Page[StoreView]:
        page = await self._store.page(VectorStoreRecord, limit=limit, order=order, after=after, before=before)
        return Page(await self._views(page.items), page.has_more)

    async def delete(self, store_id: str) -> None:
        """The store, its files' attachments and chunks; the File objects stay."""
        await self._store.get(VectorStoreRecord, store_id)
        await self._store.remove(VectorStoreRecord, store_id)
        await self._store.remove_all(VectorStoreFileRecord, vector_store_id=store_id)
        await self._store.remove_all(VectorStoreFileBatchRecord, vector_store_id=store_id)
        await index.remove_chunks(self._store, store_id)

    # -- search ---------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        """The Searcher: the best passages of the stores' completed files for one query."""
        if request.filters is not None:
            attribute_filters.validate(request.filters)
        moment = now()
        for store_id in request.vector_store_ids:
            if is_expired(await self._store.get(VectorStoreRecord, store_id), moment):
                raise InvalidRequest(
                    f"Vector store '{store_id}' has expired; create a new one to search these files.",
                    param="vector_store_ids",
                    code="vector_store_expired",
                )
        await self.touch(request.vector_store_ids)
        files = [
            record
            for store_id in request.vector_store_ids
            for record in await self._store.all(
                VectorStoreFileRecord, vector_store_id=store_id, status="completed"
            )
        ]
        if not files or not request.query.strip():
            return []
        names = await queries.filenames(self._store, {record.file_id for record in files})
        attributes = {record.file_id: record.attributes for record in files}
        return await search.search(self._store, self._embedder, request, names, attributes, set(attributes))

    async def file_ids(self, store_id: str) -> list[str]:
        """The store's files that finished ingesting, for the code interpreter (its vector stores): a
        file whose text could not be indexed (a CSV: `failed`, unsupported_file) is still there."""
        found = await self._store.all(VectorStoreFileRecord, vector_store_id=store_id)
        return [r.file_id for r in found if r.status in ("completed", "failed")]

    async def touch(self, store_ids: Iterable[str]) -> None:
        """A search or a run used these stores: their expiry starts over."""
        moment = now()
        for store_id in store_ids:
            record = await self._store.get(VectorStoreRecord, store_id)
            await self._store.change(
                VectorStoreRecord,
                store_id,
                last_active_at=moment,
                expires_at=_expires_at(record.expires_after, moment),
            )

    async def wait_ready(self, store_ids: Sequence[str], timeout_s: float) -> None:
        """Wait (at most timeout_s) until none of these stores' files is still being ingested."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            counts = await queries.counts(self._store, "vector_store_id", store_ids)
            if not any(c.in_progress for c, _ in counts.values()):
                return
            await self._ingestor.wait_changed(min(left, 1.0))

    async def thread_store(self, thread_id: str, file_ids: Sequence[str]) -> str:
        """The store a thread's message attachments go to: made once, expiring 7 days after use."""
        async with self._thread_lock:
            found = await self._store.all(VectorStoreRecord, thread_id=thread_id)
            if found:
                record = found[0]
            else:
                record = await self.create(expires_after=THREAD_STORE_EXPIRY, thread_id=thread_id)
            await self.files.check_exist(file_ids, "attachments")
            for file_id in dict.fromkeys(file_ids):
                await self.files.attach(record, file_id, None, {}, None)
            return record.id

    # -- helpers --------------------------------------------------------------------------------

    async def _views(self, records: Sequence[VectorStoreRecord]) -> list[StoreView]:
        counts = await queries.counts(self._store, "vector_store_id", [r.id for r in records])
        moment = now()
        views = []
        for record in records:
            tally, usage = counts.get(record.id, (FileCounts(), 0))
            if is_expired(record, moment):
                status = "expired"
            else:
                status = "in_progress" if tally.in_progress else "completed"
            views.append(StoreView(record, status, tally, usage))
        return views


def is_expired(record: VectorStoreRecord, moment: int) -> bool:
    """Expiry is read from expires_at whenever it matters; no job marks a store expired."""
    return record.expires_at is not None and record.expires_at <= moment


def _expires_at(expiry: dict[str, Any] | None, anchor: int) -> int | None:
    return anchor + int(expiry["days"]) * DAY_S if expiry else None
