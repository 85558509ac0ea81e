"""/threads/{thread_id}/runs and /threads/runs: create, list, retrieve, update, cancel, steps."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from agentbox.api import sse, wire
from agentbox.api.deps import EngineDep, StoreDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.messages import message_record
from agentbox.api.schemas import (
    CreateRun,
    CreateThread,
    CreateThreadAndRun,
    SubmitToolOutputs,
    UpdateMetadata,
)
from agentbox.api.threads import create_thread_record
from agentbox.api.vector_stores import VectorStoresDep
from agentbox.engine.runs import RunEngine, RunRequest
from agentbox.engine.search_resources import VectorStores, attach_to_thread
from agentbox.store.database import Store
from agentbox.store.records import RunRecord, StepRecord, ThreadRecord

router = APIRouter(tags=["runs"], responses=ERROR_RESPONSES)

# Routes that stream when the body says "stream": true document both answers.
RUN_OR_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": wire.RunObject,
        "description": "The run; with `stream: true` its events as server-sent events instead",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

# The one value OpenAI defines: file_search steps show their results' passages; anything else is a
# client mistake worth naming.
StepInclude = Literal["step_details.tool_calls[*].file_search.results[*].content"]


def _step_includes(include: Annotated[list[StepInclude] | None, Query(alias="include[]")] = None) -> bool:
    """Whether the steps show the passages their file_search calls found."""
    return bool(include)


WithContent = Annotated[bool, Depends(_step_includes)]

# openai-python's poller honours this header; without it it sleeps a full second between polls.
POLL_AFTER_MS = "100"

_OPTION_FIELDS = (
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
)


async def _start_run(
    store: Store, stores: VectorStores, engine: RunEngine, thread_id: str, body: CreateRun
) -> RunRecord:
    extra = [
        await message_record(store, thread_id, m, f"additional_messages[{i}]")
        for i, m in enumerate(body.additional_messages or [])
    ]
    # Their file_search attachments join the thread's store before the run reads the thread.
    await attach_to_thread(stores, store, thread_id, extra)
    options = {
        name: _plain(getattr(body, name)) for name in _OPTION_FIELDS if getattr(body, name) is not None
    }
    return await engine.create(
        RunRequest(
            thread_id=thread_id,
            assistant_id=body.assistant_id,
            model=body.model,
            instructions=body.instructions,
            additional_instructions=body.additional_instructions,
            additional_messages=tuple(extra),
            tools=[t.model_dump(exclude_none=True) for t in body.tools] if body.tools is not None else None,
            metadata=body.metadata,
            options=options,
        )
    )


def _plain(value: Any) -> Any:
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _answer(run: RunRecord, response: Response) -> wire.RunObject:
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return wire.run_object(run)


@router.post("/threads/{thread_id}/runs", response_model=None, responses=RUN_OR_EVENTS)
async def create_run(
    store: StoreDep,
    stores: VectorStoresDep,
    engine: EngineDep,
    response: Response,
    thread_id: str,
    body: CreateRun,
    with_content: WithContent,
) -> wire.RunObject | StreamingResponse:
    await store.get(ThreadRecord, thread_id)
    run = await _start_run(store, stores, engine, thread_id, body)
    if body.stream:
        return sse.run_stream(engine.events, run.id, with_content=with_content)
    return _answer(run, response)


@router.post("/threads/runs", response_model=None, responses=RUN_OR_EVENTS)
async def create_thread_and_run(
    store: StoreDep, stores: VectorStoresDep, engine: EngineDep, response: Response, body: CreateThreadAndRun
) -> wire.RunObject | StreamingResponse:
    thread_body = body.thread or CreateThread()
    prefix = "thread."
    if thread_body.tool_resources is None and body.tool_resources is not None:
        # The request's own tool_resources serve the thread it makes.
        thread_body, prefix = thread_body.model_copy(update={"tool_resources": body.tool_resources}), ""
    thread = await create_thread_record(store, stores, thread_body, prefix)
    run = await _start_run(store, stores, engine, thread.id, body)
    return sse.run_stream(engine.events, run.id, thread=thread) if body.stream else _answer(run, response)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None, responses=RUN_OR_EVENTS
)
async def submit_tool_outputs(
    engine: EngineDep, response: Response, thread_id: str, run_id: str, body: SubmitToolOutputs
) -> wire.RunObject | StreamingResponse:
    start = await engine.events.position_after(run_id, sse.PAUSE)
    outputs = {o.tool_call_id: o.output for o in body.tool_outputs}
    run = await engine.submit_tool_outputs(thread_id, run_id, outputs)
    return sse.run_stream(engine.events, run.id, start) if body.stream else _answer(run, response)


@router.get("/threads/{thread_id}/runs")
async def list_runs(store: StoreDep, thread_id: str, page: ListDep) -> wire.ListObject[wire.RunObject]:
    await store.get(ThreadRecord, thread_id)
    found = await store.page(
        RunRecord,
        limit=page.limit,
        order=page.order,
        after=page.after,
        before=page.before,
        thread_id=thread_id,
    )
    return wire.list_object(found, wire.run_object)


@router.get("/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(store: StoreDep, response: Response, thread_id: str, run_id: str) -> wire.RunObject:
    return _answer(await store.get(RunRecord, run_id, thread_id=thread_id), response)


@router.post("/threads/{thread_id}/runs/{run_id}")
async def update_run(store: StoreDep, thread_id: str, run_id: str, body: UpdateMetadata) -> wire.RunObject:
    await store.get(RunRecord, run_id, thread_id=thread_id)
    if body.metadata is None:
        return wire.run_object(await store.get(RunRecord, run_id))
    return wire.run_object(await store.change(RunRecord, run_id, metadata=body.metadata))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(engine: EngineDep, thread_id: str, run_id: str) -> wire.RunObject:
    return wire.run_object(await engine.cancel(thread_id, run_id))


@router.get("/threads/{thread_id}/runs/{run_id}/steps")
async def list_steps(
    store: StoreDep, thread_id: str, run_id: str, page: ListDep, with_content: WithContent
) -> wire.ListObject[wire.StepObject]:
    await store.get(RunRecord, run_id, thread_id=thread_id)
    found = await store.page(
        StepRecord, limit=page.limit, order=page.order, after=page.after, before=page.before, run_id=run_id
    )
    return wire.list_object(found, partial(wire.step_object, with_content=with_content))


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_step(
    store: StoreDep, thread_id: str, run_id: str, step_id: str, with_content: WithContent
) -> wire.StepObject:
    await store.get(RunRecord, run_id, thread_id=thread_id)
    return wire.step_object(await store.get(StepRecord, step_id, run_id=run_id), with_content)
