"""A vector store's file batches: created (each file with its own or the batch's chunking and
attributes), retrieved with their status and counts computed from their files, cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentbox.engine import vector_store_checks as checks
from agentbox.engine import vector_store_queries as queries
from agentbox.engine.vector_store_files import StoreFiles
from agentbox.engine.vector_store_queries import FileCounts
from agentbox.errors import InvalidRequest
from agentbox.ids import new_id, now
from agentbox.retrieval import index
from agentbox.store.database import Store
from agentbox.store.records import VectorStoreFileBatchRecord, VectorStoreFileRecord, VectorStoreRecord


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


class StoreBatches:
    def __init__(self, store: Store, files: StoreFiles) -> None:
        self._store = store
        self._files = files

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
        await self._files.check_exist([spec.file_id for spec in files], "file_ids")
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
            await self._files.attach(record, file_id, strategy, attrs, batch.id)
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
