"""/threads/{thread_id}/runs and /threads/runs: create, list, retrieve, update, cancel, steps."""

from __future__ import annotations

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
from agentbox.engine import file_search
from agentbox.engine.runs import RunEngine, RunRequest
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

# The one value OpenAI defines; agentbox has no file_search, so it adds nothing to the answer, but
# anything else is a client mistake worth naming.
StepInclude = Literal["step_details.tool_calls[*].file_search.results[*].content"]


def _step_includes(include: Annotated[list[StepInclude] | None, Query(alias="include[]")] = None) -> None:
    return None


INCLUDES = [Depends(_step_includes)]

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


def _refuse_file_search(body: CreateRun) -> None:
    """Checked before anything is stored: create-thread-and-run would otherwise leave its thread."""
    file_search.check_tools([t.model_dump() for t in body.tools or []])
    file_search.check_tool_choice(_plain(body.tool_choice))
    for index, message in enumerate(body.additional_messages or []):
        attachments = [a.model_dump() for a in message.attachments or []]
        file_search.check_attachments(attachments, f"additional_messages[{index}].attachments")


async def _start_run(store: Store, engine: RunEngine, thread_id: str, body: CreateRun) -> RunRecord:
    extra = [
        await message_record(store, thread_id, m, f"additional_messages[{i}]")
        for i, m in enumerate(body.additional_messages or [])
    ]
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


@router.post("/threads/{thread_id}/runs", response_model=None, responses=RUN_OR_EVENTS, dependencies=INCLUDES)
async def create_run(
    store: StoreDep, engine: EngineDep, response: Response, thread_id: str, body: CreateRun
) -> wire.RunObject | StreamingResponse:
    await store.get(ThreadRecord, thread_id)
    _refuse_file_search(body)
    run = await _start_run(store, engine, thread_id, body)
    return sse.run_stream(engine.events, run.id) if body.stream else _answer(run, response)


@router.post("/threads/runs", response_model=None, responses=RUN_OR_EVENTS)
async def create_thread_and_run(
    store: StoreDep, engine: EngineDep, response: Response, body: CreateThreadAndRun
) -> wire.RunObject | StreamingResponse:
    _refuse_file_search(body)
    file_search.check_tool_resources(body.tool_resources.model_dump() if body.tool_resources else None)
    thread = await create_thread_record(store, body.thread or CreateThread(), "thread.")
    run = await _start_run(store, engine, thread.id, body)
    return sse.run_stream(engine.events, run.id, thread=thread) if body.stream else _answer(run, response)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None, responses=RUN_OR_EVENTS
)
async def submit_tool_outputs(
    engine: EngineDep, response: Response, thread_id: str, run_id: str, body: SubmitToolOutputs
) -> wire.RunObject | StreamingResponse:
    start = engine.events.position(run_id)
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


@router.get("/threads/{thread_id}/runs/{run_id}/steps", dependencies=INCLUDES)
async def list_steps(
    store: StoreDep, thread_id: str, run_id: str, page: ListDep
) -> wire.ListObject[wire.StepObject]:
    await store.get(RunRecord, run_id, thread_id=thread_id)
    found = await store.page(
        StepRecord, limit=page.limit, order=page.order, after=page.after, before=page.before, run_id=run_id
    )
    return wire.list_object(found, wire.step_object)


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}", dependencies=INCLUDES)
async def retrieve_step(store: StoreDep, thread_id: str, run_id: str, step_id: str) -> wire.StepObject:
    await store.get(RunRecord, run_id, thread_id=thread_id)
    return wire.step_object(await store.get(StepRecord, step_id, run_id=run_id))
