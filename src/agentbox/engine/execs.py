"""Direct execution: one cell of code in a container, with no model in between (an agentbox extension).

    run(container, code) ──use()──▶ session.execute(on_output: live stdout/stderr) ──▶ collect()
                                                                                 └─▶ figures stored
Execs on one container queue on its session's lock, so they never interleave; interrupt() stops the
running one. The container does not expire while its code runs (ContainerService.busy).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agentbox.engine.containers import ContainerService, data_name
from agentbox.errors import InvalidRequest
from agentbox.fleet import Sandboxes
from agentbox.ids import new_id
from agentbox.sandbox import CellError
from agentbox.store.records import ContainerFileRecord

MAX_TIMEOUT_S = 3600.0
"""The longest timeout one exec may ask for (a session lives at most an hour of use at a time)."""
FIGURES_DIR = "figures"
"""Figures a cell displayed are kept as container files /mnt/data/figures/<exec id>-<n>.png."""

OutputListener = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ExecResult:
    id: str
    container_id: str
    status: str
    """"ok", "error", "timeout" (interrupted at its deadline), "interrupted" (on request) or "killed"."""
    stdout: str
    stderr: str
    output_truncated: bool
    error: CellError | None
    restarted: bool
    state_lost_reason: str | None
    duration_s: float
    images: list[ContainerFileRecord] = field(default_factory=list)
    files: list[ContainerFileRecord] = field(default_factory=list)


class ExecService:
    def __init__(self, containers: ContainerService, sandbox: Sandboxes) -> None:
        self._containers = containers
        self._sandbox = sandbox

    @staticmethod
    def new_id() -> str:
        return new_id("exec_")

    async def run(
        self,
        container_id: str,
        code: str,
        *,
        timeout_s: float | None = None,
        on_output: OutputListener | None = None,
        exec_id: str | None = None,
    ) -> ExecResult:
        """Run code in the container's session. NotFound for an unknown container, InvalidRequest for
        an expired one or a timeout out of range; the cell's own failures are the result's status."""
        if timeout_s is not None and not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise InvalidRequest(
                f"timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds.", param="timeout"
            )
        exec_id = exec_id or self.new_id()
        started = time.monotonic()
        files = await self._containers.use(container_id)
        async with self._containers.busy(container_id):
            execution = await self._sandbox.execute(
                container_id, code, files, timeout_s=timeout_s, on_output=on_output
            )
        changed = await self._containers.collect(container_id, execution.changed_files)
        if execution.image_files:  # already among the files
            images = [f for f in changed if data_name(f.path) in execution.image_files]
        else:
            images = [
                await self._containers.add_output(container_id, f"{FIGURES_DIR}/{exec_id}-{n}.png", png)
                for n, png in enumerate(execution.images, start=1)
            ]
        return ExecResult(
            id=exec_id,
            container_id=container_id,
            status=execution.status.value,
            stdout=execution.stdout,
            stderr=execution.stderr,
            output_truncated=execution.output_truncated,
            error=execution.error,
            restarted=execution.restarted,
            state_lost_reason=execution.state_lost_reason,
            duration_s=time.monotonic() - started,
            images=images,
            files=changed,
        )

    async def interrupt(self, container_id: str) -> bool:
        """Stop the container's running cell; False when none runs. NotFound for an unknown container."""
        await self._containers.get(container_id)
        return await self._sandbox.interrupt(container_id)
