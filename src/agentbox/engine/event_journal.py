"""The events of runs and responses in the database, for replicas that share it: the replica that
runs a run writes each event there as it publishes it, and a client streaming from another replica
reads them back, replaying from any position, then following until `done`.

Writes are batched by one writer task, so a run's events keep their order and a token stream costs
one INSERT per batch, not per delta. Followers poll (every POLL_S); a run whose replica died
publishes no `done`, so a follower that has heard nothing for a while asks whether the run (or
response) has ended, and stops if so. The events of runs that ended RETAIN_S ago are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from agentbox.engine.events import DONE, Delta
from agentbox.errors import NotFound
from agentbox.ids import now
from agentbox.store.database import Store, record_from_row, record_row
from agentbox.store.records import RESPONSE_ACTIVE, MessageRecord, ResponseRecord, RunRecord, StepRecord

log = logging.getLogger(__name__)

POLL_S = 0.1
QUIET_S = 2.0
RETAIN_S = 300
_RECORDS: dict[str, type[Any]] = {cls.__name__: cls for cls in (RunRecord, StepRecord, MessageRecord)}


def encode(payload: Any) -> dict[str, Any]:
    """An event's payload as JSON: a store record, a Delta, or the JSON a response's event already is."""
    if isinstance(payload, Delta):
        return {"delta": {"object_id": payload.object_id, "delta": payload.delta}}
    if type(payload).__name__ in _RECORDS:
        return {"record": type(payload).__name__, "fields": record_row(payload)}
    return {"json": payload}


def decode(document: dict[str, Any]) -> Any:
    if "delta" in document:
        return Delta(document["delta"]["object_id"], document["delta"]["delta"])
    if "record" in document:
        return record_from_row(_RECORDS[document["record"]], document["fields"])
    return document["json"]


class EventJournal:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[str, str, Any]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None

    def append(self, run_id: str, name: str, payload: Any) -> None:
        self._pending.append((run_id, name, encode(payload)))
        self._idle.clear()
        self._wake.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="agentbox-event-journal")

    async def aclose(self) -> None:
        """Write what is pending, then stop."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def count(self, run_id: str) -> int:
        return await self._store.event_count(run_id)

    async def count_through(self, run_id: str, name: str, wait_s: float = 2.0) -> int:
        """How many events the run has up to its last `name` event, once that is written (the
        replica running the run may not have written it yet); after wait_s, all it has."""
        deadline = time.monotonic() + wait_s
        while (found := await self._store.events_through(run_id, name)) == 0:
            if time.monotonic() > deadline:
                return await self.count(run_id)
            await asyncio.sleep(POLL_S / 2)
        return found

    async def follow(self, run_id: str, start: int = 0) -> AsyncIterator[tuple[str, Any]]:
        """The run's events from position `start`, up to and including `done`."""
        last_seq, to_skip, heard = 0, start, time.monotonic()
        while True:
            rows = await self._store.events_of(run_id, after_seq=last_seq)
            for seq, name, payload in rows:
                last_seq = seq
                if to_skip > 0:
                    to_skip -= 1
                    continue
                yield name, decode(payload)
                if name == DONE:
                    return
            if rows:
                heard = time.monotonic()
            elif time.monotonic() - heard > QUIET_S and await self._ended(run_id):
                return  # its replica died: a peer ended it without a word on the stream
            await asyncio.sleep(POLL_S)

    async def _ended(self, run_id: str) -> bool:
        try:
            if run_id.startswith("run_"):
                return not (await self._store.get(RunRecord, run_id)).status.is_active
            return (await self._store.get(ResponseRecord, run_id)).status not in RESPONSE_ACTIVE
        except NotFound:
            return True

    async def _write(self) -> None:
        pruned = time.monotonic()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                await self._store.append_events(batch)
            except Exception:  # followers on other replicas miss these; the run itself goes on
                log.exception("writing %d run events to the database failed", len(batch))
            if not self._pending:
                self._idle.set()
            if time.monotonic() - pruned > 60:
                pruned = time.monotonic()
                with contextlib.suppress(Exception):
                    await self._store.drop_events(DONE, now() - RETAIN_S)
