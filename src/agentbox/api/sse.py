"""Server-sent events of a run, in the order and framing the SDKs parse (spec §1.6, gotchas 11-13).

One event per HTTP chunk (azure-ai-projects ≤ b7 drops all but the first event of a chunk), one-line
ASCII-escaped JSON per `data:` (Azure decodes each chunk on its own), and a final `done`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from agentbox.api import wire
from agentbox.engine.events import DONE, Delta, RunEvents
from agentbox.store.records import MessageRecord, RunRecord, StepRecord, ThreadRecord


def _data(name: str, payload: Any, with_content: bool = False) -> Any:
    if isinstance(payload, RunRecord):
        return wire.run_object(payload).model_dump(mode="json")
    if isinstance(payload, StepRecord):
        return wire.step_object(payload, with_content).model_dump(mode="json")
    if isinstance(payload, MessageRecord):
        return wire.message_object(payload).model_dump(mode="json")
    if isinstance(payload, Delta):
        return {"id": payload.object_id, "object": name, "delta": payload.delta}
    raise TypeError(f"no wire shape for a {type(payload).__name__} in event {name}")


PAUSE = "thread.run.requires_action"


def frame(name: str, data: Any) -> bytes:
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n".encode("ascii")


async def _frames(
    events: RunEvents, run_id: str, start: int, first: list[bytes], with_content: bool
) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for name, payload in events.follow(run_id, start):
        if name == DONE:
            break
        yield frame(name, _data(name, payload, with_content))
        if name == PAUSE:
            break  # the client answers with submit_tool_outputs, which streams the rest
    yield frame(DONE, "[DONE]")


def run_stream(
    events: RunEvents,
    run_id: str,
    start: int = 0,
    thread: ThreadRecord | None = None,
    with_content: bool = False,
) -> StreamingResponse:
    """The run's events from position `start` as an SSE response (a new thread's event first, if any);
    `with_content`: file_search steps show their passages (include[] of create run)."""
    first = [frame("thread.created", wire.thread_object(thread).model_dump(mode="json"))] if thread else []
    return StreamingResponse(
        _frames(events, run_id, start, first, with_content),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
