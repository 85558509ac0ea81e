"""Vector stores: their files and file batches, their statuses and expiry, and the search over them.

VectorStoreService is the engine's Searcher (engine/surface.py): the agent loop's file_search
calls and POST /vector_stores/{id}/search both come here. Ingestion runs in the background
(engine/ingestion.py); statuses and counts are computed from the files' rows when read, so they
can never disagree with them.
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
from agentbox.engine.vector_store_queries import FileCounts
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.retrieval import filters as attribute_filters
from agentbox.retrieval import index, search
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.results import SearchRequest, SearchResult
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Order, Store
from agentbox.store.records import (
    FileRecord,
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


@dataclass(frozen=True, slots=True)
class BatchView:
    record: VectorStoreFileBatchRecord
    status: str
    file_counts: FileCounts


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One file of a batch: its id, and optionally its own attributes and chunking."""

    file_id: str
    attributes: dict[str, Any] | None = None
    chunking_strategy: dict[str, Any] | None = None


class VectorStoreService:
    def __init__(self, store: Store, blobs: BlobStore, embedder: Embedder | None) -> None:
        self._store = store
        self._embedder = embedder
        self._ingestor = Ingestor(store, blobs, embedder)
        self._thread_lock = asyncio.Lock()

    async def start(self) -> None:
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
        await self._existing_files(file_ids, "file_ids")
        created = now()
        record = await self._store.add(
            VectorStoreRecord(
                id=new_id("vs_"),
                created_at=created,
                name=name,
                status="completed",
                last_active_at=created,
                expires_after=expiry,
                expires_at=_expires_at(expiry, created),
                metadata=metadata or {},
                chunking_strategy=strategy or {},
                thread_id=thread_id,
            )
        )
        for file_id in dict.fromkeys(file_ids):
            await self._attach(record, file_id, strategy, {}, None)
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

    # -- files ----------------------------------------------------------------------------------

    async def attach_file(
        self,
        store_id: str,
        file_id: str,
        chunking_strategy: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> VectorStoreFileRecord:
        record = await self._store.get(VectorStoreRecord, store_id)
        strategy = checks.chunking(chunking_strategy)
        attrs = checks.attributes(attributes)
        try:
            await self._store.get(FileRecord, file_id)
        except NotFound:
            raise NotFound(f"No file found with id '{file_id}'.", param="file_id") from None
        return await self._attach(record, file_id, strategy, attrs, None)

    async def list_files(
        self,
        store_id: str,
        *,
        limit: int,
        order: Order,
        after: str | None,
        before: str | None,
        status: str | None = None,
        batch_id: str | None = None,
    ) -> Page[VectorStoreFileRecord]:
        """Cursors are file ids, as the wire shows them."""
        await self._store.get(VectorStoreRecord, store_id)
        return await self._store.page(
            VectorStoreFileRecord,
            limit=limit,
            order=order,
            after=await self._cursor(store_id, after, "after"),
            before=await self._cursor(store_id, before, "before"),
            vector_store_id=store_id,
            status=status,
            batch_id=batch_id,
        )

    async def retrieve_file(self, store_id: str, file_id: str) -> VectorStoreFileRecord:
        await self._store.get(VectorStoreRecord, store_id)
        found = await self._store.all(VectorStoreFileRecord, vector_store_id=store_id, file_id=file_id)
        if not found:
            raise NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.")
        return found[0]

    async def update_file(self, store_id: str, file_id: str, attributes: Any) -> VectorStoreFileRecord:
        record = await self.retrieve_file(store_id, file_id)
        attrs = checks.attributes(attributes)
        return await self._store.change(VectorStoreFileRecord, record.id, attributes=attrs)

    async def delete_file(self, store_id: str, file_id: str) -> None:
        """Detach the file: its chunks go, the File object stays."""
        record = await self.retrieve_file(store_id, file_id)
        await self._store.remove(VectorStoreFileRecord, record.id)
        await index.remove_chunks(self._store, store_id, file_id)

    async def file_content(self, store_id: str, file_id: str) -> list[str]:
        """The file's text as its chunks hold it, in order."""
        await self.retrieve_file(store_id, file_id)
        return await queries.chunk_texts(self._store, store_id, file_id)

    async def forget_file(self, file_id: str) -> None:
        """A File was deleted: it leaves every store it was in."""
        for record in await self._store.all(VectorStoreFileRecord, file_id=file_id):
            await self._store.remove(VectorStoreFileRecord, record.id)
            await index.remove_chunks(self._store, record.vector_store_id, file_id)

    async def file_ids(self, store_id: str) -> list[str]:
        """The store's files that finished ingesting, for the code interpreter (its vector stores): a
        file whose text could not be indexed (a CSV: `failed`, unsupported_file) is still there."""
        found = await self._store.all(VectorStoreFileRecord, vector_store_id=store_id)
        return [r.file_id for r in found if r.status in ("completed", "failed")]

    # -- batches --------------------------------------------------------------------------------

    async def create_batch(
        self,
        store_id: str,
        files: Sequence[FileSpec],
        chunking_strategy: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> BatchView:
        record = await self._store.get(VectorStoreRecord, store_id)
        if not files:
            raise InvalidRequest("A file batch needs at least one file.", param="file_ids")
        default_strategy = checks.chunking(chunking_strategy)
        default_attributes = checks.attributes(attributes)
        planned = []
        for position, spec in enumerate(files):
            planned.append(
                (
                    spec.file_id,
                    checks.chunking(spec.chunking_strategy, f"files[{position}].chunking_strategy")
                    or default_strategy,
                    checks.attributes(spec.attributes, f"files[{position}].attributes")
                    if spec.attributes is not None
                    else default_attributes,
                )
            )
        await self._existing_files([spec.file_id for spec in files], "file_ids")
        batch = await self._store.add(
            VectorStoreFileBatchRecord(
                id=new_id("vsfb_"),
                created_at=now(),
                vector_store_id=store_id,
                status="in_progress",
                file_ids=[spec.file_id for spec in files],
            )
        )
        for file_id, strategy, attrs in planned:
            await self._attach(record, file_id, strategy, attrs, batch.id)
        return await self.retrieve_batch(store_id, batch.id)

    async def retrieve_batch(self, store_id: str, batch_id: str) -> BatchView:
        batch = await self._store.get(VectorStoreFileBatchRecord, batch_id, vector_store_id=store_id)
        counts = (await queries.counts(self._store, "batch_id", [batch_id])).get(batch_id, (FileCounts(), 0))[
            0
        ]
        if batch.status == "cancelled":
            status = "cancelled"
        else:
            status = "in_progress" if counts.in_progress else "completed"
        return BatchView(batch, status, counts)

    async def cancel_batch(self, store_id: str, batch_id: str) -> BatchView:
        """Files of the batch not yet ingested end cancelled; those done stay."""
        batch = await self.retrieve_batch(store_id, batch_id)
        if batch.status == "in_progress":
            await self._store.change(VectorStoreFileBatchRecord, batch_id, status="cancelled")
            for record in await self._store.all(
                VectorStoreFileRecord, batch_id=batch_id, status="in_progress"
            ):
                await self._store.change(VectorStoreFileRecord, record.id, status="cancelled")
                await index.remove_chunks(self._store, store_id, record.file_id)
        return await self.retrieve_batch(store_id, batch_id)

    # -- search ---------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        """The Searcher: the best passages of the stores' completed files for one query."""
        if request.filters is not None:
            attribute_filters.validate(request.filters)
        for store_id in request.vector_store_ids:
            view = await self.retrieve(store_id)
            if view.status == "expired":
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
            await self._existing_files(file_ids, "attachments")
            for file_id in dict.fromkeys(file_ids):
                await self._attach(record, file_id, None, {}, None)
            return record.id

    # -- helpers --------------------------------------------------------------------------------

    async def _attach(
        self,
        store: VectorStoreRecord,
        file_id: str,
        strategy: dict[str, Any] | None,
        attrs: dict[str, Any],
        batch_id: str | None,
    ) -> VectorStoreFileRecord:
        """Attach once: a file already in the store is answered as it is (batch files move over)."""
        existing = await self._store.all(VectorStoreFileRecord, vector_store_id=store.id, file_id=file_id)
        if existing:
            return existing[0]
        record = await self._store.add(
            VectorStoreFileRecord(
                id=new_id("vsf_"),
                created_at=now(),
                vector_store_id=store.id,
                file_id=file_id,
                status="in_progress",
                chunking_strategy=strategy or store.chunking_strategy or dict(checks.AUTO),
                attributes=attrs,
                batch_id=batch_id,
            )
        )
        self._ingestor.submit(record)
        return record

    async def _existing_files(self, file_ids: Iterable[str], param: str) -> None:
        known = await queries.filenames(self._store, set(file_ids))
        missing = [file_id for file_id in file_ids if file_id not in known]
        if missing:
            raise InvalidRequest(f"No file found with id '{missing[0]}'.", param=param)

    async def _cursor(self, store_id: str, file_id: str | None, param: str) -> str | None:
        if file_id is None:
            return None
        found = await self._store.all(VectorStoreFileRecord, vector_store_id=store_id, file_id=file_id)
        if not found:
            raise InvalidRequest(
                f"No vector store file found with id '{file_id}' for '{param}'.", param=param
            )
        return found[0].id

    async def _views(self, records: Sequence[VectorStoreRecord]) -> list[StoreView]:
        counts = await queries.counts(self._store, "vector_store_id", [r.id for r in records])
        moment = now()
        views = []
        for record in records:
            tally, usage = counts.get(record.id, (FileCounts(), 0))
            if record.expires_at is not None and record.expires_at <= moment:
                status = "expired"
            else:
                status = "in_progress" if tally.in_progress else "completed"
            views.append(StoreView(record, status, tally, usage))
        return views


def _expires_at(expiry: dict[str, Any] | None, anchor: int) -> int | None:
    return anchor + int(expiry["days"]) * DAY_S if expiry else None
