"""A vector store's files: attached once each (ingestion starts in the background), listed,
read, their attributes changed, detached; and a deleted File leaving every store it was in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentbox.engine import vector_store_checks as checks
from agentbox.engine import vector_store_queries as queries
from agentbox.engine.ingestion import Ingestor
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.retrieval import index
from agentbox.store.database import Order, Store
from agentbox.store.records import FileRecord, Page, VectorStoreFileRecord, VectorStoreRecord


class StoreFiles:
    def __init__(self, store: Store, ingestor: Ingestor) -> None:
        self._store = store
        self._ingestor = ingestor

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
        return await self.attach(record, file_id, strategy, attrs, None)

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

    async def attach(
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
                owner=self._ingestor.replica.id,
            )
        )
        self._ingestor.submit(record)
        return record

    async def check_exist(self, file_ids: Iterable[str], param: str) -> None:
        """400 naming the first of these files that does not exist."""
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
