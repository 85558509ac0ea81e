"""Store records → the objects of the Assistants v2 wire format (spec §1.3).

The objects are pydantic models so the OpenAPI document at /openapi.json describes exactly what the
routes return, and FastAPI checks every answer against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from agentbox.store.records import (
    AssistantRecord,
    FileRecord,
    MessageRecord,
    Page,
    RunRecord,
    StepRecord,
    ThreadRecord,
)

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
Json = dict[str, Any]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    status_details: str | None = None
    expires_at: int | None = None


class CodeInterpreterResources(BaseModel):
    file_ids: list[str]
    vector_store_ids: list[str] | None = None


class FileSearchResources(BaseModel):
    vector_store_ids: list[str]


class ToolResources(BaseModel):
    code_interpreter: CodeInterpreterResources
    file_search: FileSearchResources | None = None


class AssistantObject(BaseModel):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[Json]
    tool_resources: ToolResources
    metadata: dict[str, str]
    temperature: float | None
    top_p: float | None
    response_format: Any


class ThreadObject(BaseModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    metadata: dict[str, str]
    tool_resources: ToolResources


class IncompleteDetails(BaseModel):
    reason: str


class MessageObject(BaseModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    role: Literal["user", "assistant"]
    content: list[Json]
    status: Literal["in_progress", "incomplete", "completed"]
    assistant_id: str | None
    run_id: str | None
    attachments: list[Json]
    completed_at: int | None
    incomplete_at: int | None
    incomplete_details: IncompleteDetails | None
    metadata: dict[str, str]


class LastError(BaseModel):
    code: str
    message: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


RunStatusName = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]


class RunObject(BaseModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatusName
    required_action: Json | None
    last_error: LastError | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: IncompleteDetails | None
    model: str
    instructions: str
    tools: list[Json]
    metadata: dict[str, str]
    usage: Usage | None
    truncation_strategy: Json
    tool_choice: Any
    parallel_tool_calls: bool
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    temperature: float | None
    top_p: float | None
    response_format: Any


class StepObject(BaseModel):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    run_id: str
    thread_id: str
    assistant_id: str
    type: Literal["message_creation", "tool_calls"]
    status: Literal["in_progress", "cancelled", "failed", "completed", "expired"]
    step_details: Json
    last_error: LastError | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    usage: Usage | None
    metadata: dict[str, str]


class ListObject(BaseModel, Generic[M]):
    object: Literal["list"] = "list"
    data: list[M]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedObject(BaseModel):
    id: str
    object: str
    deleted: bool


def _tool_resources(r: AssistantRecord | ThreadRecord) -> ToolResources:
    code = CodeInterpreterResources(
        file_ids=list(r.file_ids), vector_store_ids=list(r.code_store_ids) or None
    )
    search = FileSearchResources(vector_store_ids=list(r.search_store_ids)) if r.search_store_ids else None
    return ToolResources(code_interpreter=code, file_search=search)


def file_object(f: FileRecord) -> FileObject:
    # Uploads are usable at once; Azure's upload_file_and_poll loops while "uploaded".
    return FileObject(
        id=f.id,
        bytes=f.size,
        created_at=f.created_at,
        filename=f.filename,
        purpose=f.purpose,
        status="processed",
    )


def assistant_object(a: AssistantRecord) -> AssistantObject:
    return AssistantObject(
        id=a.id,
        created_at=a.created_at,
        name=a.name,
        description=a.description,
        model=a.model,
        instructions=a.instructions,
        tools=a.tools,
        tool_resources=_tool_resources(a),
        metadata=a.metadata,
        temperature=a.temperature,
        top_p=a.top_p,
        response_format=a.response_format if a.response_format is not None else "auto",
    )


def thread_object(t: ThreadRecord) -> ThreadObject:
    return ThreadObject(
        id=t.id,
        created_at=t.created_at,
        metadata=t.metadata,
        tool_resources=_tool_resources(t),
    )


def message_object(m: MessageRecord) -> MessageObject:
    return MessageObject(
        id=m.id,
        created_at=m.created_at,
        thread_id=m.thread_id,
        role=m.role,
        content=m.content,
        status=m.status,
        assistant_id=m.assistant_id,
        run_id=m.run_id,
        attachments=m.attachments,
        completed_at=m.completed_at,
        incomplete_at=m.incomplete_at,
        incomplete_details=IncompleteDetails(reason=m.incomplete_reason) if m.incomplete_reason else None,
        metadata=m.metadata,
    )


def run_object(r: RunRecord) -> RunObject:
    options = r.options
    return RunObject(
        id=r.id,
        created_at=r.created_at,
        thread_id=r.thread_id,
        assistant_id=r.assistant_id,
        status=r.status.value,
        required_action=r.required_action,
        last_error=LastError(**r.last_error) if r.last_error else None,
        expires_at=r.expires_at if r.status.is_active else None,
        started_at=r.started_at,
        cancelled_at=r.cancelled_at,
        failed_at=r.failed_at,
        completed_at=r.completed_at,
        incomplete_details=IncompleteDetails(reason=r.incomplete_reason) if r.incomplete_reason else None,
        model=r.model,
        instructions=r.instructions,
        tools=r.tools,
        metadata=r.metadata,
        usage=Usage(**r.usage) if r.usage else None,
        truncation_strategy=options.get("truncation_strategy") or {"type": "auto", "last_messages": None},
        tool_choice=options.get("tool_choice") or "auto",
        parallel_tool_calls=bool(options.get("parallel_tool_calls", True)),
        max_prompt_tokens=options.get("max_prompt_tokens"),
        max_completion_tokens=options.get("max_completion_tokens"),
        temperature=options.get("temperature"),
        top_p=options.get("top_p"),
        response_format=options.get("response_format") or "auto",
    )


def step_object(s: StepRecord, with_content: bool = False) -> StepObject:
    """`with_content`: the file_search results' passages, which OpenAI shows only when asked with
    include[]=step_details.tool_calls[*].file_search.results[*].content."""
    return StepObject(
        id=s.id,
        created_at=s.created_at,
        run_id=s.run_id,
        thread_id=s.thread_id,
        assistant_id=s.assistant_id,
        type=s.type,
        status=s.status,
        step_details=s.details if with_content else _without_passages(s.details),
        last_error=LastError(**s.last_error) if s.last_error else None,
        expired_at=None,
        cancelled_at=s.cancelled_at,
        failed_at=s.failed_at,
        completed_at=s.completed_at,
        usage=Usage(**s.usage) if s.usage else None,
        metadata={},
    )


def list_object(page: Page[R] | Sequence[R], shape: Callable[[R], M]) -> ListObject[M]:
    items, has_more = (page.items, page.has_more) if isinstance(page, Page) else (list(page), False)
    data = [shape(item) for item in items]
    # Empty pages carry last_id null: azure-ai-agents pages on as long as last_id is truthy.
    return ListObject[M](
        data=data,
        first_id=data[0].id if data else None,  # type: ignore[attr-defined]
        last_id=data[-1].id if data else None,  # type: ignore[attr-defined]
        has_more=has_more,
    )


def deleted_object(object_id: str, kind: str) -> DeletedObject:
    return DeletedObject(id=object_id, object=kind, deleted=True)


def _without_passages(details: Json) -> Json:
    calls = details.get("tool_calls")
    if not calls or not any(c.get("type") == "file_search" for c in calls):
        return details
    shown = []
    for call in calls:
        results = (call.get("file_search") or {}).get("results")
        if call.get("type") == "file_search" and results:
            bare = [{k: v for k, v in r.items() if k != "content"} for r in results]
            call = {**call, "file_search": {**call["file_search"], "results": bare}}
        shown.append(call)
    return {**details, "tool_calls": shown}
