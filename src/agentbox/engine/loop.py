"""The agent loop of one run: model turn → code in the thread's sandbox → feedback → … → answer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from agentbox.engine import outputs, prompt
from agentbox.engine.events import RunEvents
from agentbox.errors import AgentboxError, ModelError, NotFound
from agentbox.ids import new_id, now
from agentbox.llm.base import ChatModel, ChatRequest, Completion, ToolCall
from agentbox.sandbox import InputFile, SessionManager, safe_name
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import (
    AssistantRecord,
    FileRecord,
    MessageRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    ThreadRecord,
)

log = logging.getLogger(__name__)

OUTPUT_PURPOSE = "assistants_output"


@dataclass(frozen=True, slots=True)
class LoopLimits:
    max_tool_steps: int


class RunFailed(AgentboxError):
    """The run cannot go on; its message becomes the run's last_error."""


class AgentLoop:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        model: ChatModel,
        sandbox: SessionManager,
        events: RunEvents,
        limits: LoopLimits,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._model = model
        self._sandbox = sandbox
        self._events = events
        self._limits = limits

    async def run(self, run: RunRecord) -> RunRecord:
        """Drive one queued run to a terminal state; cancellation propagates to the caller."""
        run = await self._set(run, status=RunStatus.IN_PROGRESS, started_at=now())
        await self._events.publish(run.id, "thread.run.in_progress", run)
        try:
            return await self._converse(run)
        except ModelError as exc:
            return await self._fail(run, exc.code or "server_error", exc.message)
        except RunFailed as exc:
            return await self._fail(run, "server_error", exc.message)

    async def _converse(self, run: RunRecord) -> RunRecord:
        assistant = await self._store.get(AssistantRecord, run.assistant_id)
        thread = await self._store.get(ThreadRecord, run.thread_id)
        history = await self._store.all(MessageRecord, thread_id=thread.id)
        files = await self._session_files(assistant, thread, history)
        chat = prompt.conversation(
            run.instructions, run.options.get("additional_instructions"), history, [f.name for f in files]
        )
        tools = [prompt.CODE_TOOL] if _has_code_interpreter(run.tools) else []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        image_ids: list[str] = []
        executions = 0
        while True:
            completion = await self._model.complete(
                ChatRequest(
                    model=run.model,
                    messages=chat,
                    tools=tools,
                    temperature=run.options.get("temperature"),
                    top_p=run.options.get("top_p"),
                    max_tokens=run.options.get("max_completion_tokens"),
                    parallel_tool_calls=run.options.get("parallel_tool_calls") if tools else None,
                )
            )
            _add_usage(usage, completion)
            if not completion.tool_calls:
                return await self._answer(run, completion, image_ids, usage)
            chat.append(_assistant_turn(completion))
            for call in completion.tool_calls:
                if call.name != prompt.CODE_TOOL_NAME or not tools:
                    chat.append(
                        _tool_result(
                            call, f"Unknown tool '{call.name}'. Use the {prompt.CODE_TOOL_NAME} tool."
                        )
                    )
                    continue
                executions += 1
                if executions > self._limits.max_tool_steps:
                    raise RunFailed(
                        f"The run reached its limit of {self._limits.max_tool_steps} code executions "
                        "without a final answer."
                    )
                feedback, images = await self._execute(run, call, files, completion)
                image_ids.extend(images)
                chat.append(_tool_result(call, feedback))

    async def _execute(
        self, run: RunRecord, call: ToolCall, files: list[InputFile], completion: Completion
    ) -> tuple[str, list[str]]:
        code = _code_of(call)
        call_id = call.id if call.id.startswith("call_") else new_id("call_")
        details: dict[str, Any] = {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": code, "outputs": []},
                }
            ],
        }
        step = StepRecord(
            id=new_id("step_"),
            created_at=now(),
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            type="tool_calls",
            status="in_progress",
            details=details,
        )
        await self._store.add(step)
        await self._events.publish(run.id, "thread.run.step.created", step)
        execution = await self._sandbox.execute(run.thread_id, code, files)
        images = [
            outputs.StoredImage(await self._store_output(f"image-{i}.png", data))
            for i, data in enumerate(execution.images, start=1)
        ]
        details["tool_calls"][0]["code_interpreter"]["outputs"] = outputs.step_outputs(execution, images)
        step = await self._store.change(
            StepRecord,
            step.id,
            status="completed",
            details=details,
            completed_at=now(),
            usage=_usage_of(completion),
        )
        await self._events.publish(run.id, "thread.run.step.completed", step)
        return outputs.model_feedback(execution, images), [image.file_id for image in images]

    async def _answer(
        self, run: RunRecord, completion: Completion, image_ids: list[str], usage: dict[str, int]
    ) -> RunRecord:
        annotations = []
        stored: dict[str, str] = {}
        for link_text, start, end, name in outputs.linked_names(completion.text):
            if name not in stored:
                try:
                    data = await self._sandbox.read_file(run.thread_id, name)
                except NotFound:
                    continue  # the model linked a file its code never wrote; leave the text as it is
                stored[name] = await self._store_output(name, data)
            annotations.append(outputs.annotation(link_text, start, end, stored[name]))
        message = MessageRecord(
            id=new_id("msg_"),
            created_at=now(),
            thread_id=run.thread_id,
            role="assistant",
            content=outputs.answer_content(completion.text, annotations, image_ids),
            status="completed",
            assistant_id=run.assistant_id,
            run_id=run.id,
            completed_at=now(),
        )
        step = StepRecord(
            id=new_id("step_"),
            created_at=now(),
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            type="message_creation",
            status="completed",
            details={"type": "message_creation", "message_creation": {"message_id": message.id}},
            completed_at=now(),
            usage=_usage_of(completion),
        )
        await self._store.add(message)
        await self._store.add(step)
        await self._events.publish(run.id, "thread.message.completed", message)
        await self._events.publish(run.id, "thread.run.step.completed", step)
        run = await self._set(run, status=RunStatus.COMPLETED, completed_at=now(), usage=usage)
        await self._events.publish(run.id, "thread.run.completed", run)
        return run

    async def _fail(self, run: RunRecord, code: str, message: str) -> RunRecord:
        run = await self._set(
            run, status=RunStatus.FAILED, failed_at=now(), last_error={"code": code, "message": message}
        )
        await self._events.publish(run.id, "thread.run.failed", run)
        return run

    async def _set(self, run: RunRecord, **values: Any) -> RunRecord:
        return await self._store.change(RunRecord, run.id, **values)

    async def _store_output(self, filename: str, data: bytes) -> str:
        file_id = new_id("file-")
        path, size = await self._blobs.save_bytes(file_id, data)
        record = FileRecord(
            id=file_id, created_at=now(), filename=filename, size=size, purpose=OUTPUT_PURPOSE, path=path
        )
        await self._store.add(record)
        return file_id

    async def _session_files(
        self, assistant: AssistantRecord, thread: ThreadRecord, history: list[MessageRecord]
    ) -> list[InputFile]:
        """The files placed in /mnt/data: the assistant's, the thread's, then every attachment, in order."""
        wanted: list[str] = [*assistant.file_ids, *thread.file_ids]
        for message in history:
            wanted.extend(a["file_id"] for a in message.attachments if _for_code_interpreter(a))
        placed: list[InputFile] = []
        taken: set[str] = set()
        for file_id in dict.fromkeys(wanted):
            try:
                record = await self._store.get(FileRecord, file_id)
            except NotFound:
                continue  # deleted since it was attached; the run goes on without it
            name = _unique(safe_name(record.filename), taken)
            taken.add(name)
            placed.append(InputFile(name=name, source=self._blobs.path_of(record.path), file_id=record.id))
        return placed


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix, dot = name, "", ""
    n = 2
    while f"{stem} ({n}){dot}{suffix}" in taken:
        n += 1
    return f"{stem} ({n}){dot}{suffix}"


def _has_code_interpreter(tools: list[dict[str, Any]]) -> bool:
    return any(t.get("type") == "code_interpreter" for t in tools)


def _for_code_interpreter(attachment: dict[str, Any]) -> bool:
    tools = attachment.get("tools") or []
    return not tools or any(t.get("type") == "code_interpreter" for t in tools)


def _code_of(call: ToolCall) -> str:
    """The code of a tool call; models sometimes send the raw code instead of JSON arguments."""
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError:
        return call.arguments
    if isinstance(arguments, dict) and isinstance(arguments.get("code"), str):
        return arguments["code"]
    return call.arguments


def _assistant_turn(completion: Completion) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ],
    }


def _tool_result(call: ToolCall, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def _usage_of(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _add_usage(total: dict[str, int], completion: Completion) -> None:
    for key, value in _usage_of(completion).items():
        total[key] += value
