"""Conversations: a stored list of Responses items that responses read from and append to.

Items arrive already normalised (`responses.items.as_items`) and are kept in their wire shape, ids
included, oldest first. An item id names one item in the whole store: a client that sends an id
already taken gets OpenAI's "Duplicate item" 400, never a second copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal

from agentbox.engine.responses.items import Item
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.store.database import Store
from agentbox.store.records import ConversationItemRecord, ConversationRecord, Page

MAX_INITIAL_ITEMS = 20


class ConversationService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(
        self, items: Sequence[Item] = (), metadata: Mapping[str, str] | None = None
    ) -> ConversationRecord:
        """A new conversation holding `items` (at most 20); InvalidRequest for bad items."""
        if len(items) > MAX_INITIAL_ITEMS:
            raise InvalidRequest(
                f"A conversation can be created with at most {MAX_INITIAL_ITEMS} items; "
                f"got {len(items)}. Add the rest with the items endpoint.",
                param="items",
            )
        await self.ensure_new(items, "items")
        conversation = await self._store.add(
            ConversationRecord(id=new_id("conv_"), created_at=now(), metadata=dict(metadata or {}))
        )
        await self._insert(conversation.id, items)
        return conversation

    async def get(self, conversation_id: str) -> ConversationRecord:
        """The conversation, or NotFound."""
        return await self._store.get(ConversationRecord, conversation_id)

    async def update(self, conversation_id: str, metadata: Mapping[str, str] | None) -> ConversationRecord:
        """Replace the metadata (None clears it)."""
        await self.get(conversation_id)
        return await self._store.change(ConversationRecord, conversation_id, metadata=dict(metadata or {}))

    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation and every item in it; NotFound if it does not exist."""
        await self.get(conversation_id)
        await self._store.remove_all(ConversationItemRecord, conversation_id=conversation_id)
        await self._store.remove(ConversationRecord, conversation_id)

    async def add(
        self, conversation_id: str, items: Sequence[Item], param: str = "items"
    ) -> list[ConversationItemRecord]:
        """Append items (no count limit: a response appends its whole input and output).

        Raises NotFound for an unknown conversation and InvalidRequest (naming `param`) when an item
        id is already taken or an item is not storable; nothing is stored then.
        """
        await self.get(conversation_id)
        await self.ensure_new(items, param)
        return await self._insert(conversation_id, items)

    async def items(self, conversation_id: str) -> list[Item]:
        """Every item's data, oldest first (what a response with this conversation reads first)."""
        await self.get(conversation_id)
        records = await self._store.all(ConversationItemRecord, conversation_id=conversation_id)
        return [record.data for record in records]

    async def page(
        self,
        conversation_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page[ConversationItemRecord]:
        """One page of items, newest first by default; `after` must be an item of this conversation."""
        await self.get(conversation_id)
        if after is not None and not await self._holds(conversation_id, after):
            raise InvalidRequest(
                f"No conversation item found with id '{after}' in conversation '{conversation_id}'.",
                param="after",
            )
        return await self._store.page(
            ConversationItemRecord, limit=limit, order=order, after=after, conversation_id=conversation_id
        )

    async def get_item(self, conversation_id: str, item_id: str) -> ConversationItemRecord:
        """The item, or NotFound (for the conversation first, then for the item in it)."""
        await self.get(conversation_id)
        return await self._store.get(ConversationItemRecord, item_id, conversation_id=conversation_id)

    async def delete_item(self, conversation_id: str, item_id: str) -> ConversationRecord:
        """Remove one item; returns the conversation, as OpenAI's delete does."""
        conversation = await self.get(conversation_id)
        await self._store.get(ConversationItemRecord, item_id, conversation_id=conversation_id)
        await self._store.remove(ConversationItemRecord, item_id)
        return conversation

    async def ensure_new(self, items: Sequence[Item], param: str = "items") -> None:
        """InvalidRequest unless every item has a string id not used before and is plain JSON.

        The responses service calls this on a request's input before it runs, so the append after
        the response cannot fail on the client's items.
        """
        seen: set[str] = set()
        for index, item in enumerate(items):
            where = f"{param}[{index}]"
            item_id = item.get("id")
            if not isinstance(item_id, str) or not item_id:
                raise InvalidRequest("An item's id must be a non-empty string.", param=f"{where}.id")
            if item_id in seen or await self._taken(item_id):
                raise InvalidRequest(
                    f"Duplicate item found with id {item_id}. Remove duplicate items and try again.",
                    param=f"{where}.id",
                )
            seen.add(item_id)
            try:
                json.dumps(item, allow_nan=False)
            except ValueError as exc:
                raise InvalidRequest(
                    "Items must be plain JSON: NaN and Infinity are not numbers JSON allows.", param=where
                ) from exc

    async def _insert(self, conversation_id: str, items: Sequence[Item]) -> list[ConversationItemRecord]:
        created_at = now()
        return [
            await self._store.add(
                ConversationItemRecord(
                    id=item["id"], created_at=created_at, conversation_id=conversation_id, data=dict(item)
                )
            )
            for item in items
        ]

    async def _taken(self, item_id: str) -> bool:
        try:
            await self._store.get(ConversationItemRecord, item_id)
        except NotFound:
            return False
        return True

    async def _holds(self, conversation_id: str, item_id: str) -> bool:
        try:
            await self._store.get(ConversationItemRecord, item_id, conversation_id=conversation_id)
        except NotFound:
            return False
        return True
