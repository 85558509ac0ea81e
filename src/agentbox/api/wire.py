"""Store records → the JSON objects of the Assistants v2 wire format (spec §1.3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentbox.store.records import (
    AssistantRecord,
    FileRecord,
    MessageRecord,
    Page,
    RunRecord,
    StepRecord,
    ThreadRecord,
)

R = TypeVar("R")
Obj = dict[str, Any]

# Run options that are echoed on the Run object under their own names.
_RUN_ECHO = ("max_prompt_tokens", "max_completion_tokens", "temperature", "top_p", "response_format")


def _code_interpreter_resources(file_ids: list[str]) -> Obj:
    return {"code_interpreter": {"file_ids": list(file_ids)}}


def file_object(f: FileRecord) -> Obj:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.size,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        # Uploads are usable at once; Azure's upload_file_and_poll loops while "uploaded".
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def assistant_object(a: AssistantRecord) -> Obj:
    return {
        "id": a.id,
        "object": "assistant",
        "created_at": a.created_at,
        "name": a.name,
        "description": a.description,
        "model": a.model,
        "instructions": a.instructions,
        "tools": a.tools,
        "tool_resources": _code_interpreter_resources(a.file_ids),
        "metadata": a.metadata,
        "temperature": a.temperature,
        "top_p": a.top_p,
        "response_format": a.response_format if a.response_format is not None else "auto",
    }


def thread_object(t: ThreadRecord) -> Obj:
    return {
        "id": t.id,
        "object": "thread",
        "created_at": t.created_at,
        "metadata": t.metadata,
        "tool_resources": _code_interpreter_resources(t.file_ids),
    }


def message_object(m: MessageRecord) -> Obj:
    return {
        "id": m.id,
        "object": "thread.message",
        "created_at": m.created_at,
        "thread_id": m.thread_id,
        "role": m.role,
        "content": m.content,
        "status": m.status,
        "assistant_id": m.assistant_id,
        "run_id": m.run_id,
        "attachments": m.attachments,
        "completed_at": m.completed_at,
        "incomplete_at": m.incomplete_at,
        "incomplete_details": {"reason": m.incomplete_reason} if m.incomplete_reason else None,
        "metadata": m.metadata,
    }


def run_object(r: RunRecord) -> Obj:
    obj: Obj = {
        "id": r.id,
        "object": "thread.run",
        "created_at": r.created_at,
        "thread_id": r.thread_id,
        "assistant_id": r.assistant_id,
        "status": r.status.value,
        "required_action": r.required_action,
        "last_error": r.last_error,
        "expires_at": r.expires_at if r.status.is_active else None,
        "started_at": r.started_at,
        "cancelled_at": r.cancelled_at,
        "failed_at": r.failed_at,
        "completed_at": r.completed_at,
        "incomplete_details": {"reason": r.incomplete_reason} if r.incomplete_reason else None,
        "model": r.model,
        "instructions": r.instructions,
        "tools": r.tools,
        "metadata": r.metadata,
        "usage": r.usage,
        "truncation_strategy": r.options.get("truncation_strategy")
        or {"type": "auto", "last_messages": None},
        "tool_choice": r.options.get("tool_choice") or "auto",
        "parallel_tool_calls": bool(r.options.get("parallel_tool_calls", True)),
    }
    for key in _RUN_ECHO:
        obj[key] = r.options.get(key)
    if obj["response_format"] is None:
        obj["response_format"] = "auto"
    return obj


def step_object(s: StepRecord) -> Obj:
    return {
        "id": s.id,
        "object": "thread.run.step",
        "created_at": s.created_at,
        "run_id": s.run_id,
        "thread_id": s.thread_id,
        "assistant_id": s.assistant_id,
        "type": s.type,
        "status": s.status,
        "step_details": s.details,
        "last_error": s.last_error,
        "expired_at": None,
        "cancelled_at": s.cancelled_at,
        "failed_at": s.failed_at,
        "completed_at": s.completed_at,
        "usage": s.usage,
        "metadata": {},
    }


def list_object(page: Page[R] | Sequence[R], shape: Callable[[R], Obj]) -> Obj:
    items, has_more = (page.items, page.has_more) if isinstance(page, Page) else (list(page), False)
    data = [shape(item) for item in items]
    # Empty pages carry last_id null: azure-ai-agents pages on as long as last_id is truthy.
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def deleted_object(object_id: str, kind: str) -> Obj:
    return {"id": object_id, "object": kind, "deleted": True}
