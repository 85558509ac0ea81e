"""This server among the replicas that share its database: its id, the lease it renews, and the
watch that takes over the work of replicas whose lease ran out.

Every run, response and file ingestion names the replica working on it (its owner). A replica
renews its lease every third of AGENTBOX_REPLICA_LEASE_S; one that dies stops renewing, and once
its lease has run out, the first peer whose watch notices takes each of its records over (one
conditional UPDATE: exactly one peer wins) and ends or restarts it. On SQLite the database can't
be shared, so whatever another (earlier) process owned is taken over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from agentbox.ids import new_id, now
from agentbox.store.database import Store

log = logging.getLogger(__name__)


class Owned(Protocol):
    """A record some replica works on: a run, a response, a vector store file."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str | None: ...


R = TypeVar("R", bound=Owned)
Recovery = Callable[[], Awaitable[None]]


class Replica:
    def __init__(self, store: Store, lease_s: float) -> None:
        self.id = new_id("replica_")
        self._store = store
        self._lease_s = lease_s
        self._alone = store.dialect == "sqlite"
        self._recoveries: list[Recovery] = []
        self._watch: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether other replicas may share this database (and so hand this one requests)."""
        return not self._alone

    async def start(self) -> None:
        """Take the lease (before this replica owns anything)."""
        await self._renew()

    def watch(self, recoveries: Sequence[Recovery]) -> None:
        """From now on, run these (each takes over what dead replicas left) at every renewal.
        Alone (SQLite), start-up took over all there was, and no peer can die later: no watch."""
        if self._alone:
            return
        self._recoveries = list(recoveries)
        if self._watch is None:
            self._watch = asyncio.create_task(self._keep(), name="agentbox-replica-lease")

    async def aclose(self) -> None:
        """Stop renewing and give the lease up: peers take over at once what this replica leaves."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        with contextlib.suppress(Exception):  # a database gone at shutdown: the lease just runs out
            await self._store.renew_lease(self.id, 0)

    async def take_over(self, cls: type[R], statuses: Sequence[str]) -> list[R]:
        """The records in these statuses that no live replica owns, now owned by this one."""
        taken = []
        for record in await self._store.unowned(cls, statuses, self.id, alone=self._alone):
            if await self._store.take_over(cls, record.id, self.id, record.owner):
                taken.append(record)
        return taken

    async def _renew(self) -> None:
        await self._store.renew_lease(self.id, now() + round(self._lease_s))

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._renew()
                for recover in self._recoveries:
                    await recover()
            except Exception:  # the database may be away for a moment: try again next time
                log.exception("renewing replica %s's lease or taking over a peer's work failed", self.id)
