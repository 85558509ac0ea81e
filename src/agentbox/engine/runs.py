"""RunEngine: owns every run's task — creation, the one-active-run rule, cancel, expiry, recovery.

    queued ──► in_progress ──► completed
                    │      └──► failed (last_error)
                    ├─ cancel ──► cancelling ──► cancelled
                    └─ expires_at passes ──► expired

A run still active when its server stopped ends at that server's next start, or, on a database
replicas share, once a peer sees the server's lease run out (engine/replicas.py): failed with
last_error saying so (a cancelling one: cancelled).

A run is a task in the engine's task group; cancel and expiry are cancellation of that task, so the
run belongs to the engine, never to the HTTP connection that started it. With replicas sharing the
database, the run's task lives on the replica that created it (its owner): a cancel or tool outputs
sent to another replica go through the database, and the owner picks them up within REQUEST_POLL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from agentbox.engine import transitions
from agentbox.engine.assistants import AssistantsRunner, check_answers, not_waiting
from agentbox.engine.events import DONE, RunEvents
from agentbox.engine.replicas import Replica
from agentbox.errors import Conflict
from agentbox.ids import new_id, now
from agentbox.store.database import Store, ThreadBusy
from agentbox.store.records import AssistantRecord, MessageRecord, RunRecord, RunStatus, StepRecord

log = logging.getLogger(__name__)

REQUEST_POLL_S = 0.2

_TERMINAL_STEP = {"completed", "failed", "cancelled", "expired"}
_RESTARTED = {
    False: "The server restarted while this run was active.",
    True: "The server restarted while this run was waiting for tool outputs.",
}


@dataclass(frozen=True, slots=True)
class RunRequest:
    thread_id: str
    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    additional_messages: tuple[MessageRecord, ...] = ()
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    options: dict[str, Any] | None = None


class RunEngine:
    def __init__(
        self,
        store: Store,
        runner: AssistantsRunner,
        events: RunEvents,
        replica: Replica,
        run_ttl_s: int = 600,
    ) -> None:
        self._store = store
        self._replica = replica
        self._runner = runner
        self.events = events
        self._run_ttl_s = run_ttl_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._cancelling: set[str] = set()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[RunEngine]:
        """Run the engine: recover runs a crash left active, then own every run task until exit."""
        await self.recover()
        async with asyncio.TaskGroup() as group:
            self._group = group
            requests = group.create_task(self._serve_requests()) if self._replica.shared else None
            try:
                yield self
            finally:
                for task in list(self._tasks.values()):
                    task.cancel()
                if requests is not None:
                    requests.cancel()
                self._group = None

    async def create(self, request: RunRequest) -> RunRecord:
        """Create a queued run and start it. Conflict if the thread already has an active run."""
        lock = self._thread_locks.setdefault(request.thread_id, asyncio.Lock())
        async with lock:
            active = await self._store.active_run(request.thread_id)
            if active is not None:
                raise _thread_busy(request.thread_id, active)
            assistant = await self._store.get(AssistantRecord, request.assistant_id)
            created = now()
            instructions = (
                request.instructions if request.instructions is not None else assistant.instructions
            )
            options = dict(request.options or {})
            if request.additional_instructions:
                options["additional_instructions"] = request.additional_instructions
            for key in ("temperature", "top_p", "response_format"):
                if options.get(key) is None and getattr(assistant, key) is not None:
                    options[key] = getattr(assistant, key)
            run = RunRecord(
                id=new_id("run_"),
                created_at=created,
                thread_id=request.thread_id,
                assistant_id=assistant.id,
                status=RunStatus.QUEUED,
                model=request.model or assistant.model,
                instructions=instructions or "",
                tools=request.tools if request.tools is not None else assistant.tools,
                expires_at=created + self._run_ttl_s,
                metadata=request.metadata or {},
                options=options,
                owner=self._replica.id,
            )
            try:
                await self._store.add_run(run, request.additional_messages)
            except ThreadBusy:  # another replica's run started in between: the database said no
                active = await self._store.active_run(request.thread_id)
                raise _thread_busy(request.thread_id, active) from None
        self.events.open(run.id)
        await self.events.publish(run.id, "thread.run.created", run)
        await self.events.publish(run.id, "thread.run.queued", run)
        self._start(run)
        return run

    async def cancel(self, thread_id: str, run_id: str) -> RunRecord:
        run = await self._store.get(RunRecord, run_id, thread_id=thread_id)
        if not run.status.is_active or run.status is RunStatus.CANCELLING:
            if run.status is RunStatus.CANCELLING:
                return run
            raise Conflict(f"Cannot cancel run with status '{run.status.value}'.", param="run_id")
        run = await self._store.change(RunRecord, run.id, status=RunStatus.CANCELLING)
        if self._runs_elsewhere(run):
            return run  # its replica cancels it (or, if that replica died, the peer that takes over)
        return await self._cancel_here(run)

    async def _cancel_here(self, run: RunRecord) -> RunRecord:
        await self.events.publish(run.id, "thread.run.cancelling", run)
        task = self._tasks.get(run.id)
        if task is None:
            return await self._finish_cancelled(run)
        self._cancelling.add(run.id)
        task.cancel()
        return run

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, tool_outputs: dict[str, str]
    ) -> RunRecord:
        """Hand the client's function results to the waiting run; it goes on in the background."""
        run = await self._store.get(RunRecord, run_id, thread_id=thread_id)
        if self._runs_elsewhere(run):
            return await self._hand_over(run, tool_outputs)
        waiter = self._runner.claim_tool_outputs(run, tool_outputs)
        # In progress before the run goes on: a poller never sees the old requires_action, and
        # this write can't land after the run's own (a completed run read back as in_progress).
        try:
            run = await self._store.change(
                RunRecord, run.id, status=RunStatus.IN_PROGRESS, required_action=None
            )
            await self.events.publish(run.id, "thread.run.in_progress", run)
        finally:
            if not waiter.done():  # a cancel may have ended the wait meanwhile
                waiter.set_result(tool_outputs)
        return run

    def _runs_elsewhere(self, run: RunRecord) -> bool:
        return run.id not in self._tasks and run.owner not in (None, self._replica.id)

    async def _hand_over(self, run: RunRecord, tool_outputs: dict[str, str]) -> RunRecord:
        """Outputs for a run another replica waits in: checked here, left in the database for it."""
        if run.status is not RunStatus.REQUIRES_ACTION:
            raise not_waiting(run)
        calls = (run.required_action or {}).get("submit_tool_outputs", {}).get("tool_calls", [])
        check_answers({call["id"] for call in calls}, tool_outputs)
        if not await self._store.hand_over_tool_outputs(run.id, tool_outputs):
            raise not_waiting(await self._store.get(RunRecord, run.id))  # another submission won
        return await self._store.get(RunRecord, run.id)

    async def _serve_requests(self) -> None:
        """Act on what other replicas took for this replica's runs: cancels and tool outputs."""
        while True:
            await asyncio.sleep(REQUEST_POLL_S)
            try:
                for run in await self._store.runs_with_requests(self._replica.id):
                    await self._serve(run)
            except Exception:  # the database may be away for a moment: try again next time
                log.exception("serving other replicas' requests for this replica's runs failed")

    async def _serve(self, run: RunRecord) -> None:
        if run.tool_outputs is not None:
            outputs = run.tool_outputs
            run = await self._store.change(RunRecord, run.id, tool_outputs=None)
            waiter = self._runner.take_wait(run.id)
            if waiter is not None and not waiter.done():
                await self.events.publish(run.id, "thread.run.in_progress", run)
                waiter.set_result(outputs)
        if run.status is RunStatus.CANCELLING and run.id not in self._cancelling:
            await self._cancel_here(run)

    async def wait(self, run_id: str) -> None:
        """Return once the run's task has ended (for tests and shutdown)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task})

    def _start(self, run: RunRecord) -> None:
        self._tasks[run.id] = self.spawn(self._supervise(run), f"run {run.id}")

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start work the engine owns (a run, a response) in its task group, not in a request's."""
        if self._group is None:
            raise RuntimeError("RunEngine.open() must be entered before runs are created.")
        return self._group.create_task(work, name=name)

    async def _supervise(self, run: RunRecord) -> None:
        deadline = asyncio.get_running_loop().time() + max(0, (run.expires_at or now()) - now())
        try:
            async with asyncio.timeout_at(deadline):
                await self._runner.run(run)
        except TimeoutError:
            await self._end_steps(run, "expired")
            expired = await self._store.change(RunRecord, run.id, status=RunStatus.EXPIRED)
            await self.events.publish(run.id, "thread.run.expired", expired)
        except asyncio.CancelledError:
            current = await self._store.get(RunRecord, run.id)
            if current.status is RunStatus.CANCELLING:
                await self._finish_cancelled(current)
            else:
                raise  # shutdown, not a user's cancel: let the group end
        except Exception:
            # The supervisor is the one place an unexpected error of a run is caught: the run must
            # end failed (never stay in_progress), and the details go to the log, not the client.
            log.exception("run %s crashed", run.id)
            failed = await self._store.change(
                RunRecord,
                run.id,
                status=RunStatus.FAILED,
                failed_at=now(),
                last_error={
                    "code": "server_error",
                    "message": "agentbox hit an internal error; see the server log.",
                },
            )
            await self.events.publish(run.id, "thread.run.failed", failed)
        finally:
            self._tasks.pop(run.id, None)
            self._cancelling.discard(run.id)
            await self.events.publish(run.id, DONE)

    async def _finish_cancelled(self, run: RunRecord) -> RunRecord:
        await self._end_steps(run, "cancelled")
        run = await self._store.change(RunRecord, run.id, status=RunStatus.CANCELLED, cancelled_at=now())
        await self.events.publish(run.id, "thread.run.cancelled", run)
        return run

    async def _end_steps(self, run: RunRecord, status: str, **fields: Any) -> None:
        for step in await self._store.all(StepRecord, run_id=run.id):
            if step.status not in _TERMINAL_STEP:
                stamp = {"cancelled": {"cancelled_at": now()}, "expired": {}}.get(status, {})
                await self._store.change(StepRecord, step.id, status=status, **stamp, **fields)

    async def recover(self) -> None:
        """Runs whose server stopped while they were active can't resume (a requires_action run's
        waiter was in memory too): end them with a reason, so their threads take runs again."""
        stale = [s.value for s in RunStatus if s.is_active]
        for run in await self._replica.take_over(RunRecord, stale):
            stamp = now()
            await self._end_messages(run, stamp)
            if run.status is RunStatus.CANCELLING:  # the client asked for the end it gets
                await self._end_steps(run, "cancelled")
                await self._store.change(RunRecord, run.id, status=RunStatus.CANCELLED, cancelled_at=stamp)
                transitions.note("assistants", run.id, run.thread_id, run.status.value, "cancelled", None)
                continue
            error = {"code": "server_error", "message": _RESTARTED[run.status is RunStatus.REQUIRES_ACTION]}
            await self._end_steps(run, "failed", failed_at=stamp, last_error=error)
            await self._store.change(
                RunRecord,
                run.id,
                status=RunStatus.FAILED,
                failed_at=stamp,
                last_error=error,
                required_action=None,
            )
            reason = f"{error['code']}: {error['message']}"
            transitions.note("assistants", run.id, run.thread_id, run.status.value, "failed", reason)

    async def _end_messages(self, run: RunRecord, stamp: int) -> None:
        """An answer a crash cut keeps what was stored of it (its text is stored whole, at its end)."""
        for message in await self._store.all(MessageRecord, run_id=run.id):
            if message.status == "in_progress":
                await self._store.change(
                    MessageRecord,
                    message.id,
                    status="incomplete",
                    incomplete_at=stamp,
                    incomplete_reason="run_failed",
                )


def _thread_busy(thread_id: str, active: RunRecord | None) -> Conflict:
    """OpenAI's 400; `active` is None when the run the database saw ended before we could name it."""
    which = f" {active.id}" if active is not None else ""
    return Conflict(f"Thread {thread_id} already has an active run{which}.", param="thread_id")
