"""The one event log per run that both the SSE stream and in-process waiters read.

The runner publishes each transition as (event name, payload); payloads are store records or delta
values, never wire objects. A subscriber replays the log from the start, then follows it live.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

DONE = "done"


@dataclass(slots=True)
class _RunLog:
    events: list[tuple[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    finished: bool = False

    def has_more_than(self, count: int) -> bool:
        return len(self.events) > count


class RunEvents:
    def __init__(self) -> None:
        self._logs: dict[str, _RunLog] = {}

    def open(self, run_id: str) -> None:
        self._logs.setdefault(run_id, _RunLog())

    async def publish(self, run_id: str, name: str, payload: Any = None) -> None:
        log = self._logs.setdefault(run_id, _RunLog())
        async with log.changed:
            log.events.append((name, payload))
            if name == DONE:
                log.finished = True
            log.changed.notify_all()

    async def follow(self, run_id: str, start: int = 0) -> AsyncIterator[tuple[str, Any]]:
        """Yield the run's events from `start` on, until its `done` event."""
        log = self._logs.setdefault(run_id, _RunLog())
        index = start
        while True:
            async with log.changed:
                await log.changed.wait_for(functools.partial(log.has_more_than, index))
                pending = log.events[index:]
            for name, payload in pending:
                index += 1
                yield name, payload
                if name == DONE:
                    return

    def size(self, run_id: str) -> int:
        log = self._logs.get(run_id)
        return len(log.events) if log else 0

    def forget(self, run_id: str) -> None:
        self._logs.pop(run_id, None)
