"""/threads/{thread_id}/messages: create, list (with the run filter), retrieve, update, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from agentbox.api import wire
from agentbox.api.deps import StoreDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.schemas import CreateMessage, UpdateMetadata
from agentbox.api.vector_stores import VectorStoresDep
from agentbox.engine.file_types import check_code_interpreter_file, for_code_interpreter
from agentbox.engine.search_resources import attach_to_thread, for_file_search
from agentbox.errors import Conflict, InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.retrieval import extract
from agentbox.store.database import Store
from agentbox.store.records import FileRecord, MessageRecord, ThreadRecord

router = APIRouter(tags=["messages"], responses=ERROR_RESPONSES)


async def message_record(store: Store, thread_id: str, body: CreateMessage, param: str) -> MessageRecord:
    """A user (or assistant) message as sent by a client, its file references checked."""
    if isinstance(body.content, str):
        content: list[dict[str, Any]] = [{"type": "text", "text": {"value": body.content, "annotations": []}}]
    else:
        content = []
        for index, part in enumerate(body.content):
            if part.type == "text":
                content.append({"type": "text", "text": {"value": part.text, "annotations": []}})
            else:
                if part.type == "image_file":
                    where = "an image_file content part"
                    await _require_file(store, part.image_file.file_id, where, f"{param}.content.{index}")
                content.append(part.model_dump(exclude_none=True))
    if not content:
        raise InvalidRequest("A message needs at least one content part.", param=f"{param}.content")
    attachments = [a.model_dump() for a in body.attachments or []]
    for index, attachment in enumerate(attachments):
        where = f"{param}.attachments"
        record = await _require_file(store, attachment["file_id"], "attachments", where)
        if for_code_interpreter(attachment):
            check_code_interpreter_file(record, f"{where}[{index}].file_id")
        if for_file_search(attachment) and not extract.is_supported(record.filename):
            raise InvalidRequest(
                f"File '{record.filename}' ({record.id}) can't be searched: file_search reads "
                f"{', '.join(sorted(extract.SUPPORTED_EXTENSIONS))} files.",
                param=f"{where}[{index}].file_id",
                code="unsupported_file",
            )
    return MessageRecord(
        id=new_id("msg_"),
        created_at=now(),
        thread_id=thread_id,
        role=body.role,
        content=content,
        status="completed",
        attachments=attachments,
        completed_at=now(),
        metadata=body.metadata or {},
    )


async def _require_file(store: Store, file_id: str, where: str, param: str) -> FileRecord:
    try:
        return await store.get(FileRecord, file_id)
    except NotFound as exc:
        raise InvalidRequest(f"Invalid file id '{file_id}' in {where}: no such file.", param=param) from exc


@router.post("/threads/{thread_id}/messages")
async def create_message(
    store: StoreDep, stores: VectorStoresDep, thread_id: str, body: CreateMessage
) -> wire.MessageObject:
    await store.get(ThreadRecord, thread_id)
    active = await store.active_run(thread_id)
    if active is not None:
        raise Conflict(
            f"Can't add messages to {thread_id} while a run {active.id} is active.", param="thread_id"
        )
    record = await store.add(await message_record(store, thread_id, body, "message"))
    await attach_to_thread(stores, store, thread_id, [record])  # file_search attachments
    return wire.message_object(record)


@router.get("/threads/{thread_id}/messages")
async def list_messages(
    store: StoreDep,
    thread_id: str,
    page: ListDep,
    run_id: Annotated[str | None, Query()] = None,
    run_id_camel: Annotated[str | None, Query(alias="runId")] = None,
) -> wire.ListObject[wire.MessageObject]:
    await store.get(ThreadRecord, thread_id)
    found = await store.page(
        MessageRecord,
        limit=page.limit,
        order=page.order,
        after=page.after,
        before=page.before,
        thread_id=thread_id,
        run_id=run_id or run_id_camel,
    )
    return wire.list_object(found, wire.message_object)


@router.get("/threads/{thread_id}/messages/{message_id}")
async def retrieve_message(store: StoreDep, thread_id: str, message_id: str) -> wire.MessageObject:
    return wire.message_object(await store.get(MessageRecord, message_id, thread_id=thread_id))


@router.post("/threads/{thread_id}/messages/{message_id}")
async def update_message(
    store: StoreDep, thread_id: str, message_id: str, body: UpdateMetadata
) -> wire.MessageObject:
    await store.get(MessageRecord, message_id, thread_id=thread_id)
    if body.metadata is None:
        return wire.message_object(await store.get(MessageRecord, message_id))
    return wire.message_object(await store.change(MessageRecord, message_id, metadata=body.metadata))


@router.delete("/threads/{thread_id}/messages/{message_id}")
async def delete_message(store: StoreDep, thread_id: str, message_id: str) -> wire.DeletedObject:
    await store.get(MessageRecord, message_id, thread_id=thread_id)
    await store.remove(MessageRecord, message_id)
    return wire.deleted_object(message_id, "thread.message.deleted")
