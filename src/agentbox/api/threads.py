"""/threads: create (with initial messages), retrieve, update, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agentbox.api import wire
from agentbox.api.assistants import resource_changes
from agentbox.api.deps import SandboxDep, StoreDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.messages import message_record
from agentbox.api.schemas import CreateThread, UpdateThread
from agentbox.api.vector_stores import VectorStoresDep
from agentbox.engine.search_resources import VectorStores, attach_to_thread
from agentbox.errors import Conflict
from agentbox.ids import new_id, now
from agentbox.store.database import Store
from agentbox.store.records import ThreadRecord

router = APIRouter(tags=["threads"], responses=ERROR_RESPONSES)


async def create_thread_record(
    store: Store, stores: VectorStores, body: CreateThread, prefix: str = ""
) -> ThreadRecord:
    """The thread and its messages, all checked before any is stored; `prefix` is where the thread
    sits in the request ('thread.' in create-thread-and-run), for the errors' `param`. Files its
    messages attach for file_search go to the thread's automatic vector store."""
    thread_id = new_id("thread_")
    messages = [
        await message_record(store, thread_id, m, f"{prefix}messages[{i}]")
        for i, m in enumerate(body.messages)
    ]
    resources = await resource_changes(store, stores, body.tool_resources, f"{prefix}tool_resources")
    thread = ThreadRecord(id=thread_id, created_at=now(), metadata=body.metadata or {}, **resources)
    await store.add(thread)
    for message in messages:
        await store.add(message)
    return await attach_to_thread(stores, store, thread.id, messages) or thread


@router.post("/threads")
async def create_thread(
    store: StoreDep, stores: VectorStoresDep, body: CreateThread | None = None
) -> wire.ThreadObject:
    return wire.thread_object(await create_thread_record(store, stores, body or CreateThread()))


@router.get("/threads/{thread_id}")
async def retrieve_thread(store: StoreDep, thread_id: str) -> wire.ThreadObject:
    return wire.thread_object(await store.get(ThreadRecord, thread_id))


@router.post("/threads/{thread_id}")
async def update_thread(
    store: StoreDep, stores: VectorStoresDep, thread_id: str, body: UpdateThread
) -> wire.ThreadObject:
    current = await store.get(ThreadRecord, thread_id)
    changes: dict[str, Any] = await resource_changes(store, stores, body.tool_resources)
    if body.metadata is not None:
        changes["metadata"] = body.metadata
    if not changes:
        return wire.thread_object(current)
    return wire.thread_object(await store.change(ThreadRecord, thread_id, **changes))


@router.delete("/threads/{thread_id}")
async def delete_thread(store: StoreDep, sandbox: SandboxDep, thread_id: str) -> wire.DeletedObject:
    await store.get(ThreadRecord, thread_id)
    active = await store.active_run(thread_id)
    if active is not None:
        raise Conflict(f"Can't delete {thread_id} while a run {active.id} is active.", param="thread_id")
    await store.remove_thread(thread_id)
    await sandbox.close(thread_id)
    return wire.deleted_object(thread_id, "thread.deleted")
