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
from agentbox.api.vector_stores import VectorStoresDep
from agentbox.engine.file_types import check_code_interpreter_file
from agentbox.engine.search_resources import VectorStores, checked_store_ids
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.store.database import Store
from agentbox.store.records import AssistantRecord, FileRecord

router = APIRouter(tags=["assistants"], responses=ERROR_RESPONSES)


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


async def resource_changes(
    store: Store, stores: VectorStores, resources: ToolResources | None, prefix: str = "tool_resources"
) -> dict[str, Any]:
    """The record fields the tool_resources set, each part only when given: code_interpreter's
    file_ids and vector_store_ids, file_search's vector_store_ids (one store at most, as on OpenAI;
    `vector_stores` makes it from files). Everything is checked before a store is made."""
    if resources is None:
        return {}
    changes: dict[str, Any] = {}
    code = resources.code_interpreter
    if code is not None:
        changes["file_ids"] = await checked_file_ids(store, resources, f"{prefix}.code_interpreter.file_ids")
        if code.vector_store_ids is not None:
            param = f"{prefix}.code_interpreter.vector_store_ids"
            changes["code_store_ids"] = await checked_store_ids(store, code.vector_store_ids, param)
    search = resources.file_search
    if search is not None:
        param = f"{prefix}.file_search"
        named = await checked_store_ids(store, search.vector_store_ids or [], f"{param}.vector_store_ids")
        if len(named) + len(search.vector_stores or []) > 1:
            raise InvalidRequest("file_search takes at most 1 vector store.", param=param)
        for new in search.vector_stores or []:
            made = await stores.create(
                file_ids=new.file_ids, chunking_strategy=new.chunking_strategy, metadata=new.metadata
            )
            named.append(made.id)
        changes["search_store_ids"] = named
    return changes


@router.post("/assistants")
async def create_assistant(
    store: StoreDep, stores: VectorStoresDep, body: CreateAssistant
) -> wire.AssistantObject:
    resources = await resource_changes(store, stores, body.tool_resources)
    record = AssistantRecord(
        id=new_id("asst_"),
        created_at=now(),
        model=body.model,
        name=body.name,
        description=body.description,
        instructions=body.instructions,
        tools=[t.model_dump(exclude_none=True) for t in body.tools],
        metadata=body.metadata or {},
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=body.response_format,
        **resources,
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
async def update_assistant(
    store: StoreDep, stores: VectorStoresDep, assistant_id: str, body: UpdateAssistant
) -> wire.AssistantObject:
    current = await store.get(AssistantRecord, assistant_id)
    changes: dict[str, Any] = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in ("tools", "tool_resources")
    }
    if body.tools is not None:
        changes["tools"] = [t.model_dump(exclude_none=True) for t in body.tools]
    if "model" in changes and not changes["model"]:
        raise InvalidRequest("'model' must not be empty.", param="model")
    changes.update(await resource_changes(store, stores, body.tool_resources))
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
