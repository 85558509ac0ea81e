"""/vector_stores: create, list, retrieve, update, delete and search (files and batches:
api/vector_store_files.py). The objects are shaped as openai-python's types/vector_store*.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentbox.api import wire
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.schemas import Metadata, _check_metadata, no_azure_data_sources
from agentbox.engine import searching
from agentbox.engine.surface import FileSearchSpec
from agentbox.engine.vector_store_queries import FileCounts
from agentbox.engine.vector_stores import StoreView, VectorStoreService
from agentbox.retrieval.results import SearchResult

router = APIRouter(tags=["vector_stores"], responses=ERROR_RESPONSES)


def get_vector_stores(request: Request) -> VectorStoreService:
    service: VectorStoreService = request.app.state.vector_stores
    return service


VectorStoresDep = Annotated[VectorStoreService, Depends(get_vector_stores)]

# -- request bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExpiresAfter(BaseModel):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class CreateVectorStore(_Body):
    name: str | None = Field(None, max_length=256)
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: dict[str, Any] | None = None
    """{"type": "auto"} or {"type": "static", "static": {…}}: checked by engine/vector_store_checks.py."""
    metadata: Metadata | None = None
    configuration: Any = None
    """Azure's store configuration (its data_sources): refused."""

    _metadata = field_validator("metadata")(_check_metadata)
    _configuration = field_validator("configuration")(no_azure_data_sources)


class UpdateVectorStore(_Body):
    name: str | None = Field(None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class RankingOptions(_Body):
    ranker: Literal["none", "auto", "default-2024-11-15"] | None = None
    score_threshold: float | None = Field(None, ge=0, le=1)


class SearchBody(_Body):
    query: str | list[str]
    """One query or several (at most 10), none empty."""
    filters: dict[str, Any] | None = None
    """A comparison {type, key, value} or a compound {type: and|or, filters}: checked by the engine."""
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False
    """Accepted; agentbox searches the query as written (search_query shows it)."""

    @field_validator("query")
    @classmethod
    def _queries(cls, value: str | list[str]) -> str | list[str]:
        queries = [value] if isinstance(value, str) else value
        if not queries or len(queries) > 10:
            raise ValueError("give one to ten queries")
        if any(not q.strip() for q in queries):
            raise ValueError("a query must not be empty")
        return value


# -- response objects ---------------------------------------------------------------------------


class FileCountsObject(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStoreObject(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCountsObject
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]


class VectorStoreDeleted(BaseModel):
    id: str
    object: Literal["vector_store.deleted"] = "vector_store.deleted"
    deleted: bool = True


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResultObject(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, str | float | bool]
    content: list[TextContent]


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResultObject]
    has_more: bool = False
    next_page: str | None = None


def counts_object(counts: FileCounts) -> FileCountsObject:
    return FileCountsObject(
        in_progress=counts.in_progress,
        completed=counts.completed,
        failed=counts.failed,
        cancelled=counts.cancelled,
        total=counts.total,
    )


def store_object(view: StoreView) -> VectorStoreObject:
    record = view.record
    return VectorStoreObject(
        id=record.id,
        created_at=record.created_at,
        name=record.name or "",
        usage_bytes=view.usage_bytes,
        file_counts=counts_object(view.file_counts),
        status=view.status,
        expires_after=ExpiresAfter(**record.expires_after) if record.expires_after else None,
        expires_at=record.expires_at,
        last_active_at=record.last_active_at,
        metadata=record.metadata,
    )


def result_object(result: SearchResult) -> SearchResultObject:
    return SearchResultObject(
        file_id=result.file_id,
        filename=result.filename,
        score=round(result.score, 6),
        attributes=result.attributes,
        content=[TextContent(text=result.text)],
    )


# -- routes -------------------------------------------------------------------------------------


@router.post("/vector_stores")
async def create_vector_store(service: VectorStoresDep, body: CreateVectorStore) -> VectorStoreObject:
    record = await service.create(
        name=body.name,
        file_ids=body.file_ids,
        expires_after=body.expires_after.model_dump() if body.expires_after else None,
        chunking_strategy=body.chunking_strategy,
        metadata=body.metadata,
    )
    return store_object(await service.retrieve(record.id))


@router.get("/vector_stores")
async def list_vector_stores(service: VectorStoresDep, page: ListDep) -> wire.ListObject[VectorStoreObject]:
    found = await service.list_stores(
        limit=page.limit, order=page.order, after=page.after, before=page.before
    )
    return wire.list_object(found, store_object)


@router.get("/vector_stores/{vector_store_id}")
async def retrieve_vector_store(service: VectorStoresDep, vector_store_id: str) -> VectorStoreObject:
    return store_object(await service.retrieve(vector_store_id))


@router.post("/vector_stores/{vector_store_id}")
async def update_vector_store(
    service: VectorStoresDep, vector_store_id: str, body: UpdateVectorStore
) -> VectorStoreObject:
    changes = body.model_dump(include=body.model_fields_set)
    return store_object(await service.update(vector_store_id, **changes))


@router.delete("/vector_stores/{vector_store_id}")
async def delete_vector_store(service: VectorStoresDep, vector_store_id: str) -> VectorStoreDeleted:
    await service.delete(vector_store_id)
    return VectorStoreDeleted(id=vector_store_id)


@router.post("/vector_stores/{vector_store_id}/search")
async def search_vector_store(
    service: VectorStoresDep, vector_store_id: str, body: SearchBody
) -> SearchResultsPage:
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    options = body.ranking_options or RankingOptions()
    spec = FileSearchSpec(
        vector_store_ids=[vector_store_id],
        max_num_results=body.max_num_results,
        filters=body.filters,
        ranker=options.ranker or "auto",
        score_threshold=options.score_threshold or 0.0,
    )
    ranked = await searching.search(service, spec, queries)
    return SearchResultsPage(search_query=queries, data=[result_object(r) for r in ranked])
