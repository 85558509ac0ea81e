"""Stores a record change and announces it on the run's event log, in that order, in one place."""

from __future__ import annotations

from typing import Any, TypeVar

from agentbox.engine.events import Delta, RunEvents
from agentbox.store.database import Store

R = TypeVar("R")


class Publisher:
    def __init__(self, store: Store, events: RunEvents, run_id: str) -> None:
        self.store = store
        self.events = events
        self.run_id = run_id

    async def add(self, record: R, *names: str) -> R:
        await self.store.add(record)
        for name in names:
            await self.events.publish(self.run_id, name, record)
        return record

    async def change(self, cls: type[R], record_id: str, names: tuple[str, ...], **values: Any) -> R:
        record = await self.store.change(cls, record_id, **values)
        for name in names:
            await self.events.publish(self.run_id, name, record)
        return record

    async def delta(self, name: str, object_id: str, delta: dict[str, Any]) -> None:
        await self.events.publish(self.run_id, name, Delta(object_id, delta))
