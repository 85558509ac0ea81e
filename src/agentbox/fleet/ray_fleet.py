"""RayFleet: the replica's side of AGENTBOX_FLEET=ray://HOST:PORT. No sandbox runs in the replica.

- Nodes: every live Ray node offering the `agentbox_node` resource gets one detached actor named
  after it (node.FleetNode), pinned there; whichever replica gets there first creates it, the others
  find it by name. A refresher looks for new and dead nodes every REFRESH_S.
- Placement: a key's session lives on one node, named in the fleet_sessions table, so every
  replica sends the key's cells to the same node. A new key goes to the less loaded of two random
  live nodes (load: the live sessions each node last reported).
- A node that dies: the cell running there ends killed, with a sentence; the key's next cell moves
  to another node (a conditional update, so one replica wins), which restores the files of the
  last checkpoint, and the cell's result says the variables were lost and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agentbox.errors import NotFound, SandboxUnavailable, StoreUnavailable
from agentbox.fleet.address import NODE_RESOURCE, parse_fleet_url
from agentbox.fleet.checkpoints import Checkpoints
from agentbox.fleet.node import FileSpec, FleetNode, NodeReport
from agentbox.sandbox import CellError, Execution, ExecutionStatus, InputFile
from agentbox.sandbox.kernel import OutputCallback
from agentbox.store.blob_url import S3Location
from agentbox.store.fleet_sessions import FleetSession, FleetSessions

log = logging.getLogger(__name__)

NAMESPACE = "agentbox"
REFRESH_S = 2.0
READY_S = 120.0
UNAVAILABLE_S = 15.0
"""How long a node whose actor cannot be reached may take to answer again, while Ray still lists it
alive (Ray's default health checks declare a dead node in about 12 s)."""
RETRY_S = 0.5
SUSPECT_S = 60.0
"""A node whose actor failed a call gets no session for this long, unless Ray sees it alive anew."""
NODE_GONE = (RayActorError, ActorDiedError, ActorUnavailableError)
NODE_STOPPED = (
    "The sandbox node running this session stopped during the cell, so the cell did not finish and its "
    "variables are lost. The next cell runs on another node, with the files of /mnt/data as they were "
    "after the last finished cell."
)


def moved_reason(session: FleetSession) -> str:
    if session.checkpoint_bytes is not None:
        files = "its files in /mnt/data were restored as they were after the last finished cell"
    elif session.checkpoint_note:
        files = f"its files in /mnt/data could not be restored: {session.checkpoint_note}"
    else:
        files = "no cell had finished there, so /mnt/data starts empty"
    return f"the sandbox node holding this session stopped, so its variables were lost; {files}"


class RayFleet:
    def __init__(
        self, url: str, sessions: FleetSessions, location: S3Location, checkpoint_bytes: int
    ) -> None:
        self._address = parse_fleet_url(url)
        self._sessions = sessions
        self._checkpoints = Checkpoints(location)
        self._checkpoint_bytes = checkpoint_bytes
        self._actors: dict[str, Any] = {}  # node id → actor handle
        self._reports: dict[str, NodeReport] = {}
        self._placed_since_report: dict[str, int] = {}
        self._live: set[str] = set()
        self._suspects: dict[str, float] = {}  # node id → monotonic time its actor failed
        self._refresher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._connect)
        await self._refresh()
        if not self._live:
            log.warning("no Ray node offers %s yet: sandbox calls fail until one joins", NODE_RESOURCE)
        self._refresher = asyncio.create_task(self._keep_refreshing())

    def _connect(self) -> None:
        # A driver, not a Ray Client: Ray's client server does not start its per-client server under
        # token auth (2.60), and a driver talks to the nodes without a proxy in between.
        ray.init(
            address=self._address,
            namespace=NAMESPACE,
            logging_level=logging.WARNING,
            log_to_driver=False,
            configure_logging=False,
        )

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._background):
            task.cancel()
        await asyncio.to_thread(ray.shutdown)

    async def _keep_refreshing(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self._refresh()
            except Exception:
                log.exception("could not refresh the fleet's nodes")

    async def _refresh(self) -> None:
        nodes = await asyncio.to_thread(ray.nodes)
        live = {
            node["NodeID"]
            for node in nodes
            if node.get("Alive") and node.get("Resources", {}).get(NODE_RESOURCE)
        }
        for node_id in self._live - live:
            self._actors.pop(node_id, None)
            self._reports.pop(node_id, None)
        self._live = live
        now = time.monotonic()
        fresh = [n for n in live if now - self._suspects.get(n, -SUSPECT_S) >= SUSPECT_S]
        await asyncio.gather(*(self._ask_ready(node_id) for node_id in fresh))

    async def _ask_ready(self, node_id: str) -> None:
        try:
            # A new node's actor imports agentbox and starts its fork server first: tens of seconds.
            self._reports[node_id] = await asyncio.wait_for(self._actor(node_id).ready.remote(), READY_S)
            self._placed_since_report.pop(node_id, None)
        except (TimeoutError, RayError) as exc:
            log.warning("sandbox node %s is not ready: %s", node_id, exc)

    def _actor(self, node_id: str) -> Any:
        actor = self._actors.get(node_id)
        if actor is None:
            actor = (
                ray.remote(FleetNode)
                .options(
                    name=f"agentbox-node-{node_id}",
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    lifetime="detached",
                    num_cpus=0,
                    max_concurrency=1000,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                )
                .remote(self._checkpoint_bytes)
            )
            self._actors[node_id] = actor
        return actor

    def _forget(self, node_id: str) -> None:
        """The node's actor failed a call: no new session goes there until it is seen alive again."""
        self._suspects[node_id] = time.monotonic()
        self._actors.pop(node_id, None)  # a node still alive gets a new actor by the same name

    def _usable(self) -> list[str]:
        """Live nodes that have not failed a call lately and whose host can isolate sessions."""
        now = time.monotonic()
        return [
            n
            for n in self._live
            if now - self._suspects.get(n, -SUSPECT_S) >= SUSPECT_S and not self._refused(n)
        ]

    def _refused(self, node: str) -> bool:
        report = self._reports.get(node)
        return report is not None and report.refusal is not None

    # --- what the engine calls ------------------------------------------------------------------
    def refusal(self) -> str | None:
        refusals = [r.refusal for n, r in self._reports.items() if n in self._live]
        if refusals and all(refusals):
            return f"no sandbox node of the fleet can isolate sessions: {refusals[0]}"
        return None

    def isolation_report(self) -> list[tuple[str, bool, str]]:
        for report in self._reports.values():
            return report.isolation
        return []

    def pool_statistics(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for report in self._reports.values():
            for name, count in report.statistics.items():
                total[name] = total.get(name, 0) + count
        return total

    async def _place(self, key: str) -> tuple[str, str | None, FleetSession | None]:
        """The node to run the key's next cell on, the restore reason when the session moved there,
        and the key's row (its settings)."""
        session = await self._sessions.get(key)
        if session is not None and session.node and await self._reachable(session.node):
            return session.node, session.restore_reason, session
        node = await self._choose(exclude=session.node if session else "")
        if session is None or not session.node:
            placed = await self._sessions.place(key, node)
            return placed.node, placed.restore_reason, placed
        reason = moved_reason(session)
        if await self._sessions.move(key, session.node, node, reason):
            return node, reason, session
        again = await self._sessions.get(key)  # another replica moved it first
        if again is None:
            return await self._place(key)  # closed meanwhile: placed afresh
        return again.node, again.restore_reason, again

    async def _choose(self, exclude: str = "") -> str:
        """The less loaded of two random usable nodes that answer (two, not all: replicas whose
        reports are a little old then spread new sessions rather than all pick the same node)."""
        while True:
            candidates = [n for n in self._usable() if n != exclude]
            if not candidates:
                raise SandboxUnavailable(
                    "No sandbox node of the fleet is alive; try again when one has joined the Ray cluster."
                )
            pair = random.sample(candidates, min(2, len(candidates)))
            node = min(pair, key=self._load)
            if await self._reachable(node):
                self._placed_since_report[node] = self._placed_since_report.get(node, 0) + 1
                return node

    def _load(self, node: str) -> int:
        """The node's live sessions as it last reported them (every REFRESH_S), and the sessions this
        replica placed there since. Not the table's count: it keeps rows of sessions that expired."""
        report = self._reports.get(node)
        live = report.statistics.get("live", 0) if report is not None else 0
        return live + self._placed_since_report.get(node, 0)

    async def _reachable(self, node: str) -> bool:
        """Whether the node's actor answers. A node that died fails the call within a second or two,
        while Ray lists it alive until its health checks give up: without asking, a replica that had
        not seen it fail would send it the next cell. A broken connection (ActorUnavailableError)
        may also be a blip, so the node gets UNAVAILABLE_S before its sessions move."""
        if node not in self._usable():
            return False
        deadline = time.monotonic() + UNAVAILABLE_S
        while True:
            try:
                await asyncio.wait_for(self._actor(node).ping.remote(), READY_S)
                return True
            except ActorUnavailableError as exc:
                if time.monotonic() < deadline and await self._listed_alive(node):
                    await asyncio.sleep(RETRY_S)
                    continue
                failure: Exception = exc
            except (TimeoutError, RayError) as exc:
                failure = exc
            log.warning("sandbox node %s does not answer: %s", node, failure)
            self._forget(node)
            return False

    async def _listed_alive(self, node: str) -> bool:
        nodes = await asyncio.to_thread(ray.nodes)
        return any(n["NodeID"] == node and n.get("Alive") for n in nodes)

    async def execute(
        self,
        key: str,
        code: str,
        files: Sequence[InputFile] = (),
        *,
        timeout_s: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> Execution:
        started = time.monotonic()
        node, restore_reason, settings = await self._place(key)
        specs = [FileSpec(f.name, f.blob, f.file_id) for f in files]
        try:
            pieces = (
                self._actor(node)
                .execute.options(num_returns="streaming")
                .remote(
                    key,
                    code,
                    specs,
                    timeout_s,
                    restore_reason,
                    settings.memory_mb if settings else None,
                    settings.idle_s if settings else None,
                )
            )
            async for ref in pieces:
                piece = await ref
                if piece[0] == "output":
                    if on_output is not None:
                        await on_output(piece[1], piece[2])
                    continue
                _, execution, size, note = piece
                with contextlib.suppress(StoreUnavailable):
                    await self._sessions.checkpointed(key, size, note)
                    if restore_reason is not None:
                        await self._sessions.restored(key, node)
                return execution  # type: ignore[no-any-return]
        except NODE_GONE as exc:
            log.warning("sandbox node %s stopped during a cell of %s: %s", node, key, exc)
            self._forget(node)
        return Execution(
            status=ExecutionStatus.KILLED,
            logs=NODE_STOPPED,
            images=(),
            image_files=(),
            changed_files=(),
            restarted=False,
            duration_s=time.monotonic() - started,
            error=CellError("SessionKilled", NODE_STOPPED, ""),
        )

    async def _node_of(self, key: str) -> str | None:
        session = await self._sessions.get(key)
        return session.node if session is not None and session.node in self._live else None

    async def interrupt(self, key: str) -> bool:
        node = await self._node_of(key)
        if node is None:
            return False
        try:
            return bool(await self._actor(node).interrupt.remote(key))
        except NODE_GONE:
            return False

    async def configure(self, key: str, *, memory_mb: int | None = None, idle_s: float | None = None) -> None:
        await self._sessions.configure(key, memory_mb, idle_s)
        node = await self._node_of(key)
        if node is not None:
            with contextlib.suppress(*NODE_GONE):
                await self._actor(node).configure.remote(key, memory_mb, idle_s)

    def touch(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._touch(key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, key: str) -> None:
        node = await self._node_of(key)
        if node is not None:
            with contextlib.suppress(*NODE_GONE):
                await self._actor(node).touch.remote(key)

    async def close(self, key: str) -> None:
        node = await self._node_of(key)
        if node is not None:
            with contextlib.suppress(*NODE_GONE):
                await self._actor(node).close.remote(key)
        with contextlib.suppress(StoreUnavailable):
            await self._checkpoints.delete(key)  # the node may be gone, its checkpoint not
        await self._sessions.remove(key)

    async def copy_file_out(self, key: str, name: str, target: Path, max_bytes: int = 512 << 20) -> int:
        node = await self._node_of(key)
        if node is None:
            raise NotFound(f"no sandbox session for {key!r}")
        actor = self._actor(node)
        try:
            handle, size = await actor.export.remote(key, name, max_bytes)
            try:
                with target.open("xb") as out:
                    offset = 0
                    while offset < size:
                        chunk: bytes = await actor.read.remote(handle, offset)
                        if not chunk:
                            break
                        await asyncio.to_thread(out.write, chunk)
                        offset += len(chunk)
                return offset
            finally:
                with contextlib.suppress(*NODE_GONE):
                    await actor.release.remote(handle)
        except NODE_GONE as exc:
            self._forget(node)
            raise NotFound(f"the sandbox node holding {key!r} stopped") from exc

    async def remove_file(self, key: str, name: str) -> bool:
        node = await self._node_of(key)
        if node is None:
            return False
        try:
            return bool(await self._actor(node).remove_file.remote(key, name))
        except NODE_GONE:
            return False
