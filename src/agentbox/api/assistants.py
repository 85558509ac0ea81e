"""/assistants: create, list, retrieve, update, delete."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from agentbox.api import wire
from agentbox.api.deps import StoreDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.schemas import CreateAssistant, ToolResources, UpdateAssistant
from agentbox.engine import file_search
from agentbox.engine.file_types import check_code_interpreter_file
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.store.database import Store
from agentbox.store.records import AssistantRecord, FileRecord

router = APIRouter(tags=["assistants"], responses=ERROR_RESPONSES)


def refuse_file_search(tools: list[Any] | None, resources: ToolResources | None) -> None:
    """An assistant's (or run's) tools and tool_resources asking for file_search get a 400."""
    file_search.check_tools([t.model_dump() for t in tools or []])
    file_search.check_tool_resources(resources.model_dump() if resources else None)


async def checked_file_ids(store: Store, resources: ToolResources | None, param: str) -> list[str]:
    """The code interpreter's file ids, each checked to exist (a typo fails now, not in a run) and to
    be of a type the code interpreter takes."""
    if resources is None or resources.code_interpreter is None:
        return []
    file_ids = resources.code_interpreter.file_ids
    for file_id in file_ids:
        try:
            record = await store.get(FileRecord, file_id)
        except NotFound as exc:
            raise InvalidRequest(f"Invalid file id '{file_id}': no such file.", param=param) from exc
        check_code_interpreter_file(record, param)
    return list(file_ids)


@router.post("/assistants")
async def create_assistant(store: StoreDep, body: CreateAssistant) -> wire.AssistantObject:
    refuse_file_search(body.tools, body.tool_resources)
    record = AssistantRecord(
        id=new_id("asst_"),
        created_at=now(),
        model=body.model,
        name=body.name,
        description=body.description,
        instructions=body.instructions,
        tools=[t.model_dump(exclude_none=True) for t in body.tools],
        file_ids=await checked_file_ids(
            store, body.tool_resources, "tool_resources.code_interpreter.file_ids"
        ),
        metadata=body.metadata or {},
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=body.response_format,
    )
    return wire.assistant_object(await store.add(record))


@router.get("/assistants")
async def list_assistants(store: StoreDep, page: ListDep) -> wire.ListObject[wire.AssistantObject]:
    found = await store.page(
        AssistantRecord, limit=page.limit, order=page.order, after=page.after, before=page.before
    )
    return wire.list_object(found, wire.assistant_object)


@router.get("/assistants/{assistant_id}")
async def retrieve_assistant(store: StoreDep, assistant_id: str) -> wire.AssistantObject:
    return wire.assistant_object(await store.get(AssistantRecord, assistant_id))


@router.post("/assistants/{assistant_id}")
async def update_assistant(store: StoreDep, assistant_id: str, body: UpdateAssistant) -> wire.AssistantObject:
    current = await store.get(AssistantRecord, assistant_id)
    refuse_file_search(body.tools, body.tool_resources)
    changes: dict[str, Any] = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in ("tools", "tool_resources")
    }
    if body.tools is not None:
        changes["tools"] = [t.model_dump(exclude_none=True) for t in body.tools]
    if body.tool_resources is not None:
        changes["file_ids"] = await checked_file_ids(
            store, body.tool_resources, "tool_resources.code_interpreter.file_ids"
        )
    if "model" in changes and not changes["model"]:
        raise InvalidRequest("'model' must not be empty.", param="model")
    if changes.get("metadata") is None:
        changes.pop("metadata", None)
    merged = dataclasses.replace(current, **changes)
    fields = {
        f.name: getattr(merged, f.name)
        for f in dataclasses.fields(merged)
        if f.name not in ("id", "created_at")
    }
    return wire.assistant_object(await store.change(AssistantRecord, assistant_id, **fields))


@router.delete("/assistants/{assistant_id}")
async def delete_assistant(store: StoreDep, assistant_id: str) -> wire.DeletedObject:
    await store.get(AssistantRecord, assistant_id)
    await store.remove(AssistantRecord, assistant_id)
    return wire.deleted_object(assistant_id, "assistant.deleted")
