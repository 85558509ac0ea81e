"""/conversations: create, retrieve, update and delete, and the items in each (spec §4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentbox.api import wire
from agentbox.api.deps import ConversationsDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.schemas import Metadata, _check_metadata
from agentbox.engine.responses.items import Includable, as_items, present
from agentbox.store.records import ConversationItemRecord, ConversationRecord, Page

router = APIRouter(tags=["conversations"], responses=ERROR_RESPONSES)

Json = dict[str, Any]

IncludeQuery = Annotated[list[Includable] | None, Query(alias="include[]")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateConversation(_Body):
    items: list[Json] | None = Field(None, max_length=20)
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class UpdateConversation(_Body):
    metadata: Metadata | None

    _metadata = field_validator("metadata")(_check_metadata)


class CreateItems(_Body):
    items: list[Json] = Field(max_length=20)


class ConversationObject(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: Metadata


class ItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Json]
    first_id: str | None
    last_id: str | None
    has_more: bool


def _conversation(record: ConversationRecord) -> ConversationObject:
    return ConversationObject(id=record.id, created_at=record.created_at, metadata=record.metadata)


def _item_list(
    found: Page[ConversationItemRecord] | Sequence[ConversationItemRecord], include: Sequence[str]
) -> ItemList:
    records, has_more = (found.items, found.has_more) if isinstance(found, Page) else (list(found), False)
    data = [present(record.data, include) for record in records]
    return ItemList(
        data=data,
        first_id=records[0].id if records else None,
        last_id=records[-1].id if records else None,
        has_more=has_more,
    )


@router.post("/conversations")
async def create_conversation(
    conversations: ConversationsDep, body: CreateConversation | None = None
) -> ConversationObject:
    body = body or CreateConversation()
    items = as_items(body.items or [], param="items")
    return _conversation(await conversations.create(items, body.metadata))


@router.get("/conversations/{conversation_id}")
async def retrieve_conversation(conversations: ConversationsDep, conversation_id: str) -> ConversationObject:
    return _conversation(await conversations.get(conversation_id))


@router.post("/conversations/{conversation_id}")
async def update_conversation(
    conversations: ConversationsDep, conversation_id: str, body: UpdateConversation
) -> ConversationObject:
    return _conversation(await conversations.update(conversation_id, body.metadata))


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(conversations: ConversationsDep, conversation_id: str) -> wire.DeletedObject:
    await conversations.delete(conversation_id)
    return wire.deleted_object(conversation_id, "conversation.deleted")


@router.post("/conversations/{conversation_id}/items")
async def create_items(
    conversations: ConversationsDep, conversation_id: str, body: CreateItems, include: IncludeQuery = None
) -> ItemList:
    items = as_items(body.items, param="items")
    return _item_list(await conversations.add(conversation_id, items), include or [])


@router.get("/conversations/{conversation_id}/items")
async def list_items(
    conversations: ConversationsDep,
    conversation_id: str,
    include: IncludeQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
) -> ItemList:
    found = await conversations.page(conversation_id, after=after, limit=limit, order=order)
    return _item_list(found, include or [])


@router.get("/conversations/{conversation_id}/items/{item_id}")
async def retrieve_item(
    conversations: ConversationsDep, conversation_id: str, item_id: str, include: IncludeQuery = None
) -> Json:
    return present((await conversations.get_item(conversation_id, item_id)).data, include or [])


@router.delete("/conversations/{conversation_id}/items/{item_id}")
async def delete_item(
    conversations: ConversationsDep, conversation_id: str, item_id: str
) -> ConversationObject:
    return _conversation(await conversations.delete_item(conversation_id, item_id))
