"""The one event log per run that both the SSE stream and in-process waiters read.

The loop publishes each transition as (event name, payload): payloads are store records, or a
Delta carrying the changed part of a step or message in the Assistants delta shape (an `index` on
every list entry). A follower replays the log from any position, then follows it live, until `done`.

The log lives in the memory of the replica that runs the run; with a journal (replicas sharing a
database, engine/event_journal.py) every event is written there too, and a follower on a replica
that doesn't hold the log reads it from there.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentbox.engine import transitions

if TYPE_CHECKING:
    from agentbox.engine.event_journal import EventJournal

DONE = "done"
RETAIN_AFTER_DONE_S = 300.0


@dataclass(frozen=True, slots=True)
class Delta:
    object_id: str
    delta: dict[str, Any]


@dataclass(slots=True)
class _RunLog:
    events: list[tuple[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    status: str | None = None  # the run's status its events last showed (engine/transitions.py)

    def has_more_than(self, count: int) -> bool:
        return len(self.events) > count


class RunEvents:
    def __init__(self, journal: EventJournal | None = None) -> None:
        self._logs: dict[str, _RunLog] = {}
        self.journal = journal

    def open(self, run_id: str) -> None:
        self._logs.setdefault(run_id, _RunLog())

    async def publish(self, run_id: str, name: str, payload: Any = None) -> None:
        log = self._logs.setdefault(run_id, _RunLog())
        async with log.changed:
            log.events.append((name, payload))
            log.changed.notify_all()
        if self.journal is not None:
            self.journal.append(run_id, name, payload)
        log.status = transitions.observe(log.status, payload)
        if name == DONE:
            # Followers that attached late still get the whole log for a while, then it is dropped.
            asyncio.get_running_loop().call_later(RETAIN_AFTER_DONE_S, self._logs.pop, run_id, None)

    def observe(self, run_id: str, payload: Any) -> None:
        """Note a status change that publishes no event (see engine/transitions.py)."""
        log = self._logs.get(run_id)
        status = transitions.observe(log.status if log else None, payload)
        if log is not None:
            log.status = status

    async def follow(self, run_id: str, start: int = 0) -> AsyncIterator[tuple[str, Any]]:
        """Yield the run's events from position `start` on, up to and including `done`."""
        log = self._logs.get(run_id)
        if log is None:
            if self.journal is not None:
                async for event in self.journal.follow(run_id, start):
                    yield event
            return
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

    async def position_after(self, run_id: str, name: str) -> int:
        """Where a follower of what comes after the run's last `name` event starts: the end of the
        log here; in the journal, just past that event, which the run's replica may not have
        written yet when a client acts on it (a pause, answered with submit_tool_outputs)."""
        if run_id in self._logs or self.journal is None:
            return await self.position(run_id)
        return await self.journal.count_through(run_id, name)

    async def position(self, run_id: str) -> int:
        """How many events the run has published so far (where a new follower should start)."""
        log = self._logs.get(run_id)
        if log is not None:
            return len(log.events)
        return await self.journal.count(run_id) if self.journal is not None else 0
