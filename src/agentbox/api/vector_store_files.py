"""/vector_stores/{id}/files and /file_batches: attach, list, retrieve, update, detach, content;
batches created, retrieved, cancelled and listed. A vector store file's id is its File's id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, field_validator, model_validator

from agentbox.api import wire
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.schemas import no_azure_data_sources
from agentbox.api.vector_stores import (
    FileCountsObject,
    TextContent,
    VectorStoresDep,
    _Body,
    counts_object,
)
from agentbox.engine.vector_store_batches import BatchView, FileSpec
from agentbox.store.records import VectorStoreFileRecord

router = APIRouter(tags=["vector_stores"], responses=ERROR_RESPONSES)

# openai-python's pollers (upload_and_poll, create_and_poll) honour this; without it they sleep 1 s.
POLL_AFTER_MS = "100"

Attributes = dict[str, str | float | bool]
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]

# -- request bodies -----------------------------------------------------------------------------


class AttachFile(_Body):
    file_id: str = Field(min_length=1)
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None
    data_sources: Any = None

    _data_sources = field_validator("data_sources")(no_azure_data_sources)


class UpdateFile(_Body):
    attributes: Attributes | None


class BatchFile(_Body):
    file_id: str = Field(min_length=1)
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None


class CreateBatch(_Body):
    file_ids: list[str] | None = Field(None, min_length=1, max_length=500)
    files: list[BatchFile] | None = Field(None, min_length=1, max_length=500)
    """Per-file attributes and chunking; give either this or file_ids."""
    chunking_strategy: dict[str, Any] | None = None
    attributes: Attributes | None = None
    data_sources: Any = None

    _data_sources = field_validator("data_sources")(no_azure_data_sources)

    @model_validator(mode="after")
    def _one_list(self) -> CreateBatch:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("give exactly one of 'file_ids' and 'files'")
        return self


# -- response objects ---------------------------------------------------------------------------


class LastError(BaseModel):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFileObject(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    vector_store_id: str
    status: FileStatus
    usage_bytes: int
    last_error: LastError | None
    chunking_strategy: dict[str, Any] | None
    attributes: Attributes


class VectorStoreFileDeleted(BaseModel):
    id: str
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"
    deleted: bool = True


class FileContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool = False
    next_page: str | None = None


class BatchObject(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: FileStatus
    file_counts: FileCountsObject


def file_object(record: VectorStoreFileRecord) -> VectorStoreFileObject:
    return VectorStoreFileObject(
        id=record.file_id,
        created_at=record.created_at,
        vector_store_id=record.vector_store_id,
        status=record.status,
        usage_bytes=record.usage_bytes,
        last_error=LastError(**record.last_error) if record.last_error else None,
        chunking_strategy=record.chunking_strategy or None,
        attributes=record.attributes,
    )


def batch_object(view: BatchView) -> BatchObject:
    return BatchObject(
        id=view.record.id,
        created_at=view.record.created_at,
        vector_store_id=view.record.vector_store_id,
        status=view.status,
        file_counts=counts_object(view.file_counts),
    )


def _poll_soon(response: Response, status: str) -> None:
    if status == "in_progress":
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS


# -- files --------------------------------------------------------------------------------------

FILES = "/vector_stores/{vector_store_id}/files"
BATCHES = "/vector_stores/{vector_store_id}/file_batches"


@router.post(FILES)
async def attach_file(
    service: VectorStoresDep, response: Response, vector_store_id: str, body: AttachFile
) -> VectorStoreFileObject:
    record = await service.files.attach_file(
        vector_store_id, body.file_id, body.chunking_strategy, body.attributes
    )
    _poll_soon(response, record.status)
    return file_object(record)


@router.get(FILES)
async def list_vector_store_files(
    service: VectorStoresDep,
    vector_store_id: str,
    page: ListDep,
    filter: Annotated[FileStatus | None, Query()] = None,
) -> wire.ListObject[VectorStoreFileObject]:
    found = await service.files.list_files(
        vector_store_id,
        limit=page.limit,
        order=page.order,
        after=page.after,
        before=page.before,
        status=filter,
    )
    return wire.list_object(found, file_object)


@router.get(FILES + "/{file_id}")
async def retrieve_vector_store_file(
    service: VectorStoresDep, response: Response, vector_store_id: str, file_id: str
) -> VectorStoreFileObject:
    record = await service.files.retrieve_file(vector_store_id, file_id)
    _poll_soon(response, record.status)
    return file_object(record)


@router.post(FILES + "/{file_id}")
async def update_vector_store_file(
    service: VectorStoresDep, vector_store_id: str, file_id: str, body: UpdateFile
) -> VectorStoreFileObject:
    return file_object(await service.files.update_file(vector_store_id, file_id, body.attributes))


@router.delete(FILES + "/{file_id}")
async def delete_vector_store_file(
    service: VectorStoresDep, vector_store_id: str, file_id: str
) -> VectorStoreFileDeleted:
    await service.files.delete_file(vector_store_id, file_id)
    return VectorStoreFileDeleted(id=file_id)


@router.get(FILES + "/{file_id}/content")
async def vector_store_file_content(
    service: VectorStoresDep, vector_store_id: str, file_id: str
) -> FileContentPage:
    texts = await service.files.file_content(vector_store_id, file_id)
    return FileContentPage(data=[TextContent(text=text) for text in texts])


# -- batches ------------------------------------------------------------------------------------


@router.post(BATCHES)
async def create_file_batch(
    service: VectorStoresDep, response: Response, vector_store_id: str, body: CreateBatch
) -> BatchObject:
    if body.files is not None:
        specs = [FileSpec(f.file_id, f.attributes, f.chunking_strategy) for f in body.files]
    else:
        specs = [FileSpec(file_id) for file_id in body.file_ids or []]
    view = await service.batches.create_batch(vector_store_id, specs, body.chunking_strategy, body.attributes)
    _poll_soon(response, view.status)
    return batch_object(view)


@router.get(BATCHES + "/{batch_id}")
async def retrieve_file_batch(
    service: VectorStoresDep, response: Response, vector_store_id: str, batch_id: str
) -> BatchObject:
    view = await service.batches.retrieve_batch(vector_store_id, batch_id)
    _poll_soon(response, view.status)
    return batch_object(view)


@router.post(BATCHES + "/{batch_id}/cancel")
async def cancel_file_batch(service: VectorStoresDep, vector_store_id: str, batch_id: str) -> BatchObject:
    return batch_object(await service.batches.cancel_batch(vector_store_id, batch_id))


@router.get(BATCHES + "/{batch_id}/files")
async def list_file_batch_files(
    service: VectorStoresDep,
    vector_store_id: str,
    batch_id: str,
    page: ListDep,
    filter: Annotated[FileStatus | None, Query()] = None,
) -> wire.ListObject[VectorStoreFileObject]:
    await service.batches.retrieve_batch(vector_store_id, batch_id)
    found = await service.files.list_files(
        vector_store_id,
        limit=page.limit,
        order=page.order,
        after=page.after,
        before=page.before,
        status=filter,
        batch_id=batch_id,
    )
    return wire.list_object(found, file_object)
