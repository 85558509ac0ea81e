"""Plain values the store hands out; ORM rows never leave store/."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Json = dict[str, Any]
T = TypeVar("T")


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"

    @property
    def is_active(self) -> bool:
        return self in _ACTIVE


_ACTIVE = {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION, RunStatus.CANCELLING}


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    created_at: int
    filename: str
    size: int
    purpose: str
    path: str
    """Location of the bytes relative to the blob root."""


@dataclass(frozen=True, slots=True)
class AssistantRecord:
    id: str
    created_at: int
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[Json] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    """Files given to the code interpreter (tool_resources.code_interpreter.file_ids)."""
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    search_store_ids: list[str] = field(default_factory=list)
    """tool_resources.file_search.vector_store_ids."""
    code_store_ids: list[str] = field(default_factory=list)
    """tool_resources.code_interpreter.vector_store_ids: their files go to /mnt/data too."""
    top_p: float | None = None
    response_format: Any = None


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: str
    created_at: int
    file_ids: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    search_store_ids: list[str] = field(default_factory=list)
    """tool_resources.file_search.vector_store_ids (one store at most, as on OpenAI)."""
    code_store_ids: list[str] = field(default_factory=list)
    """tool_resources.code_interpreter.vector_store_ids."""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    created_at: int
    thread_id: str
    role: str
    content: list[Json]
    """Content parts in the Assistants shape (text with annotations, image_file, image_url)."""
    status: str = "completed"
    attachments: list[Json] = field(default_factory=list)
    assistant_id: str | None = None
    run_id: str | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    incomplete_reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus
    model: str
    instructions: str
    tools: list[Json] = field(default_factory=list)
    started_at: int | None = None
    expires_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    last_error: Json | None = None
    usage: Json | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    options: Json = field(default_factory=dict)
    """Everything else the client set (temperature, top_p, max tokens, tool_choice, …), kept as given."""
    required_action: Json | None = None
    """The function calls the client must answer while the run is requires_action."""
    incomplete_reason: str | None = None
    owner: str | None = None
    """The replica whose engine runs it (engine/replicas.py)."""
    tool_outputs: dict[str, str] | None = None
    """Outputs another replica took for this run, until its owner resumes it with them."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    id: str
    created_at: int
    run_id: str
    thread_id: str
    assistant_id: str
    type: str
    status: str
    details: Json
    completed_at: int | None = None
    failed_at: int | None = None
    cancelled_at: int | None = None
    last_error: Json | None = None
    usage: Json | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


# --- the Responses generation ------------------------------------------------------------------


RESPONSE_ACTIVE = ("queued", "in_progress", "cancelling")
"""A stored response's statuses while it runs; `cancelling` (never on the wire) while the replica
running it has yet to act on a cancel another replica took."""


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    id: str
    created_at: int
    status: str
    data: Json
    """The response object as the API returns it, output included."""
    input_items: list[Json] = field(default_factory=list)
    """This response's own input, as items with ids (GET /responses/{id}/input_items)."""
    previous_response_id: str | None = None
    conversation_id: str | None = None
    owner: str | None = None
    """The replica that runs it (engine/replicas.py)."""


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationItemRecord:
    id: str
    created_at: int
    conversation_id: str
    data: Json
    """The item in its wire shape (message, function_call, code_interpreter_call, …), `id` included."""


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    id: str
    created_at: int
    name: str
    status: str
    """running | expired (expired is final: its session and files are gone)."""
    last_active_at: int
    expires_after_minutes: int
    memory_limit: str
    """One of OpenAI's tiers: 1g, 4g, 16g, 64g."""


@dataclass(frozen=True, slots=True)
class ContainerFileRecord:
    id: str
    created_at: int
    container_id: str
    path: str
    """Where the code sees it: /mnt/data/<name>."""
    bytes: int
    source: str
    """user (uploaded or copied from /files) | assistant (written by the code)."""
    blob: str
    """Location of a copy of the bytes relative to the blob root."""


@dataclass(frozen=True, slots=True)
class AgentVersionRecord:
    id: str
    created_at: int
    name: str
    version: str
    definition: Json
    """The prompt agent definition: kind, model, instructions, tools, …"""
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VectorStoreRecord:
    id: str
    created_at: int
    name: str | None = None
    last_active_at: int | None = None
    expires_after: Json | None = None
    """{"anchor": "last_active_at", "days": N} or None (never expires)."""
    expires_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    chunking_strategy: Json = field(default_factory=dict)
    """The store's default for files attached without one: {"type": "static", "static": {...}}."""
    thread_id: str | None = None
    """Set for the store a thread's message attachments made (the automatic store, 7 days' expiry)."""


@dataclass(frozen=True, slots=True)
class VectorStoreFileRecord:
    id: str
    """Our own key (vsf_…); on the wire a vector store file's id is its file_id."""
    created_at: int
    vector_store_id: str
    file_id: str
    status: str = "in_progress"
    """in_progress | completed | cancelled | failed."""
    usage_bytes: int = 0
    last_error: Json | None = None
    """{"code": "server_error" | "unsupported_file" | "invalid_file", "message": …} when failed."""
    chunking_strategy: Json = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    batch_id: str | None = None
    owner: str | None = None
    """The replica that ingests it (engine/replicas.py)."""


@dataclass(frozen=True, slots=True)
class VectorStoreFileBatchRecord:
    id: str
    created_at: int
    vector_store_id: str
    status: str = "in_progress"
    """in_progress | completed | cancelled | failed."""
    file_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk of a vector store file's text; the chunks_fts index (SQLite FTS5) mirrors `text`."""

    id: str
    created_at: int
    vector_store_id: str
    file_id: str
    position: int
    """Its order in the file, from 0."""
    text: str
    tokens: int
    embedding: list[float] | None = None
    """From the embeddings endpoint when one is configured."""
