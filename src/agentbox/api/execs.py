"""/containers/{id}/exec and /containers/{id}/interrupt: code without a model (an agentbox extension).

Not part of OpenAI's API: docs/compatibility.md lists it beside the compatible routes. A streamed
exec keeps running when its client goes away (like a notebook cell); its files are still collected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agentbox.api.containers import ContainerFileObject, container_file_object
from agentbox.api.deps import ContainersDep, ExecsDep
from agentbox.api.errors import ERROR_RESPONSES, error_body, status_and_body
from agentbox.api.sse import frame
from agentbox.engine.containers import EXPIRED_MESSAGE
from agentbox.engine.execs import MAX_TIMEOUT_S, ExecResult, ExecService
from agentbox.errors import AgentboxError, InvalidRequest

log = logging.getLogger(__name__)
router = APIRouter(tags=["exec (agentbox extension)"], responses=ERROR_RESPONSES)

EXEC_OR_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The finished exec; with `stream: true` its events as server-sent events instead",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_detached: set[asyncio.Task[ExecResult]] = set()  # streamed execs whose client left: kept until done


class CreateExec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1 << 20)
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)
    """Seconds; the server's cell timeout (AGENTBOX_EXEC_TIMEOUT_S) when left out."""
    stream: bool = False


class ExecError(BaseModel):
    name: str
    value: str
    traceback: str


class ExecObject(BaseModel):
    id: str
    object: Literal["container.exec"] = "container.exec"
    container_id: str
    status: Literal["running", "ok", "error", "timeout", "interrupted", "killed"]
    stdout: str = ""
    stderr: str = ""
    output_truncated: bool = False
    error: ExecError | None = None
    images: list[ContainerFileObject] = Field(default_factory=list)
    files: list[ContainerFileObject] = Field(default_factory=list)
    restarted: bool = False
    state_lost_reason: str | None = None
    duration_ms: int = 0


class InterruptObject(BaseModel):
    object: Literal["container.interrupt"] = "container.interrupt"
    container_id: str
    interrupted: bool


def exec_object(result: ExecResult) -> ExecObject:
    error = result.error
    return ExecObject(
        id=result.id,
        container_id=result.container_id,
        status=result.status,
        stdout=result.stdout,
        stderr=result.stderr,
        output_truncated=result.output_truncated,
        error=ExecError(name=error.name, value=error.value, traceback=error.traceback) if error else None,
        images=[container_file_object(f) for f in result.images],
        files=[container_file_object(f) for f in result.files],
        restarted=result.restarted,
        state_lost_reason=result.state_lost_reason,
        duration_ms=round(result.duration_s * 1000),
    )


@router.post("/containers/{container_id}/exec", responses=EXEC_OR_EVENTS, response_model=None)
async def create_exec(
    containers: ContainersDep, execs: ExecsDep, container_id: str, body: CreateExec
) -> ExecObject | StreamingResponse:
    """Run one cell in the container, like a notebook: state persists between execs."""
    if not body.stream:
        return exec_object(await execs.run(container_id, body.code, timeout_s=body.timeout))
    # Refuse before the stream starts, so a wrong id or an expired container is a plain 4xx.
    if (await containers.get(container_id)).status != "running":
        raise InvalidRequest(EXPIRED_MESSAGE)
    return StreamingResponse(
        _events(execs, container_id, body),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(execs: ExecService, container_id: str, body: CreateExec) -> AsyncIterator[bytes]:
    exec_id = execs.new_id()
    heard: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()

    async def on_output(stream: str, text: str) -> None:
        heard.put_nowait((stream, text))

    task = asyncio.create_task(
        execs.run(container_id, body.code, timeout_s=body.timeout, on_output=on_output, exec_id=exec_id)
    )
    task.add_done_callback(lambda _: heard.put_nowait(None))
    _detached.add(task)
    task.add_done_callback(_detached.discard)
    running = ExecObject(id=exec_id, container_id=container_id, status="running")
    yield _event("exec.created", exec=running.model_dump(mode="json"))
    while (piece := await heard.get()) is not None:
        stream, text = piece
        yield _event("exec.output.delta", exec_id=exec_id, stream=stream, delta=text)
    try:
        result = task.result()
    except Exception as exc:  # the stream has begun: the error becomes its last event
        found = status_and_body(exc) if isinstance(exc, AgentboxError) else None
        if found is None:
            log.exception("exec %s failed", exec_id)
        error = found[1] if found else error_body("The server had an error.", "server_error")
        yield _event("error", exec_id=exec_id, **error)
        return
    for image in result.images:
        yield _event("exec.image", exec_id=exec_id, file=container_file_object(image).model_dump(mode="json"))
    yield _event("exec.completed", exec=exec_object(result).model_dump(mode="json"))


def _event(name: str, **data: Any) -> bytes:
    return frame(name, {"type": name, **data})


@router.post("/containers/{container_id}/interrupt")
async def interrupt_exec(execs: ExecsDep, container_id: str) -> InterruptObject:
    """Stop the cell running in the container (queued execs still run after it)."""
    interrupted = await execs.interrupt(container_id)
    return InterruptObject(container_id=container_id, interrupted=interrupted)
