"""/responses: create (JSON, SSE, background), retrieve (also an SSE replay), delete, cancel, input items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator

from agentbox.api.deps import ResponsesDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.schemas import Metadata, ReasoningEffort, _check_metadata
from agentbox.api.sse import frame
from agentbox.engine.events import DONE
from agentbox.engine.responses.items import present
from agentbox.engine.responses.service import ResponseParams, ResponsesService
from agentbox.errors import InvalidRequest

router = APIRouter(tags=["responses"], responses=ERROR_RESPONSES)

RESPONSE_OR_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The response; with `stream: true` its events as server-sent events instead",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


class ConversationRef(BaseModel):
    id: str


class AgentReference(BaseModel):
    name: str = Field(min_length=1)
    version: str | None = None
    type: Literal["agent_reference"] = "agent_reference"


class Reasoning(BaseModel):
    effort: ReasoningEffort | None = None
    summary: str | None = None


class CreateResponse(BaseModel):
    model: str | None = None
    input: str | list[dict[str, Any]] = Field(default_factory=list)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    include: list[str] | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    max_tool_calls: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    parallel_tool_calls: bool | None = None
    metadata: Metadata | None = None
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    # Foundry: azure-ai-projects ≥ 2.0.0b4 sends agent_reference, 2.0.0b1-b3 sent agent.
    agent_reference: AgentReference | None = None
    agent: AgentReference | None = None

    _metadata = field_validator("metadata")(_check_metadata)

    def params(self) -> ResponseParams:
        conversation = (
            self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation
        )
        reference = self.agent_reference or self.agent
        return ResponseParams(
            model=self.model,
            input=self.input,
            instructions=self.instructions,
            tools=self.tools or [],
            tool_choice=self.tool_choice if self.tool_choice is not None else "auto",
            include=self.include or [],
            previous_response_id=self.previous_response_id,
            conversation=conversation,
            store=self.store if self.store is not None else True,
            background=bool(self.background),
            stream=bool(self.stream),
            max_output_tokens=self.max_output_tokens,
            max_tool_calls=self.max_tool_calls,
            temperature=self.temperature,
            top_p=self.top_p,
            parallel_tool_calls=self.parallel_tool_calls if self.parallel_tool_calls is not None else True,
            metadata=self.metadata or {},
            text=self.text,
            truncation=self.truncation or "disabled",
            reasoning_effort=self.reasoning.effort if self.reasoning else None,
            agent_reference=reference.model_dump(exclude_none=True) if reference else None,
            user=self.user,
        )


def _include(
    include: Annotated[list[str] | None, Query()] = None,
    include_brackets: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> list[str]:
    """The SDK sends include[]=…; hand-written clients often send include=…; either is fine."""
    return [*(include or []), *(include_brackets or [])]


IncludeDep = Annotated[list[str], Depends(_include)]


def _events(service: ResponsesService, response_id: str, start: int) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for name, payload in service.events.follow(response_id, start):
            if name == DONE:
                return
            yield frame(name, payload)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/responses", responses=RESPONSE_OR_EVENTS, response_model=None)
async def create_response(service: ResponsesDep, body: CreateResponse) -> dict[str, Any] | StreamingResponse:
    params = body.params()
    response_id = await service.create(params)
    if params.stream:
        return _events(service, response_id, 0)
    if params.background:
        return await service.get(response_id, params.include)
    return await service.result(response_id, params.include)


@router.get("/responses/{response_id}", responses=RESPONSE_OR_EVENTS, response_model=None)
async def retrieve_response(
    service: ResponsesDep,
    response_id: str,
    include: IncludeDep,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any] | StreamingResponse:
    response = await service.get(response_id, include)
    if stream:
        return _events(service, response["id"], await service.stream_position(response_id, starting_after))
    return response


@router.delete("/responses/{response_id}")
async def delete_response(service: ResponsesDep, response_id: str) -> dict[str, Any]:
    await service.delete(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/responses/{response_id}/cancel")
async def cancel_response(service: ResponsesDep, response_id: str) -> dict[str, Any]:
    return await service.cancel(response_id)


@router.get("/responses/{response_id}/input_items")
async def list_input_items(
    service: ResponsesDep,
    response_id: str,
    include: IncludeDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    items = [present(item, include) for item in await service.input_items(response_id)]
    if order == "desc":
        items.reverse()
    ids = [item["id"] for item in items]
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and cursor not in ids:
            raise InvalidRequest(f"No input item found with id '{cursor}' for '{name}'.", param=name)
    start = ids.index(after) + 1 if after is not None else 0
    end = ids.index(before) if before is not None else len(items)
    window = items[start:end]
    page = window[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(window) > limit,
    }
