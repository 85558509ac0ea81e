"""The agent loop of one run: model turn → code in the thread's sandbox → feedback → … → answer.

Each model turn is streamed: text becomes a message as it arrives, each code call a step whose
input streams too. Function calls (the client's own tools) pause the run in requires_action until
the client submits their outputs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from agentbox.engine import outputs, prompt
from agentbox.engine.answer import AnswerWriter
from agentbox.engine.events import RunEvents
from agentbox.engine.publisher import Publisher
from agentbox.engine.toolsteps import CodeStep, FunctionStep
from agentbox.errors import AgentboxError, InvalidRequest, ModelError, NotFound
from agentbox.ids import new_id, now
from agentbox.llm.base import ChatModel, ChatRequest, Completion, TextDelta, ToolCall, ToolCallDelta
from agentbox.sandbox import InputFile, SessionManager, safe_name
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import (
    AssistantRecord,
    FileRecord,
    MessageRecord,
    RunRecord,
    RunStatus,
    ThreadRecord,
)

log = logging.getLogger(__name__)

OUTPUT_PURPOSE = "assistants_output"


@dataclass(frozen=True, slots=True)
class LoopLimits:
    max_tool_steps: int


class RunFailed(AgentboxError):
    """The run cannot go on; its message becomes the run's last_error."""


@dataclass(slots=True)
class _Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens

    def wire(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def turn_usage(completion: Completion) -> dict[str, int]:
    usage = _Usage()
    usage.add(completion)
    return usage.wire()


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
        self._pending: dict[str, tuple[FunctionStep, asyncio.Future[dict[str, str]]]] = {}

    async def run(self, run: RunRecord) -> RunRecord:
        """Drive one queued run to a terminal state; cancellation propagates to the caller."""
        publisher = Publisher(self._store, self._events, run.id)
        run = await publisher.change(
            RunRecord, run.id, ("thread.run.in_progress",), status=RunStatus.IN_PROGRESS, started_at=now()
        )
        usage = _Usage()
        try:
            return await self._converse(publisher, run, usage)
        except ModelError as exc:
            return await self._fail(publisher, run, exc.code or "server_error", exc.message, usage)
        except RunFailed as exc:
            return await self._fail(publisher, run, "server_error", exc.message, usage)
        finally:
            self._pending.pop(run.id, None)

    def submit_tool_outputs(self, run: RunRecord, tool_outputs: dict[str, str]) -> None:
        """Resume a run waiting in requires_action. InvalidRequest if it isn't, or ids don't match."""
        pending = self._pending.get(run.id)
        if run.status is not RunStatus.REQUIRES_ACTION or pending is None or pending[1].done():
            raise InvalidRequest(
                f"Run {run.id} is not waiting for tool outputs (status '{run.status.value}').", param="run_id"
            )
        step, waiter = pending
        expected = {c.id for c in step.calls}
        if set(tool_outputs) != expected:
            missing = sorted(expected - set(tool_outputs))
            unknown = sorted(set(tool_outputs) - expected)
            raise InvalidRequest(
                f"Tool outputs must answer exactly the calls {sorted(expected)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
                + ".",
                param="tool_outputs",
            )
        waiter.set_result(tool_outputs)

    async def _converse(self, publisher: Publisher, run: RunRecord, usage: _Usage) -> RunRecord:
        assistant = await self._store.get(AssistantRecord, run.assistant_id)
        thread = await self._store.get(ThreadRecord, run.thread_id)
        history = await self._store.all(MessageRecord, thread_id=thread.id)
        files = await self._session_files(assistant, thread, history)
        truncation = run.options.get("truncation_strategy") or {}
        if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
            history = history[-int(truncation["last_messages"]) :]
        chat = prompt.conversation(
            run.instructions, run.options.get("additional_instructions"), history, [f.name for f in files]
        )
        code_enabled = any(t.get("type") == "code_interpreter" for t in run.tools)
        functions = [t for t in run.tools if t.get("type") == "function" and t.get("function")]
        tools = ([prompt.CODE_TOOL] if code_enabled else []) + [
            {"type": "function", "function": t["function"]} for t in functions
        ]
        function_names = {t["function"]["name"] for t in functions}
        tool_choice = _tool_choice(run.options.get("tool_choice"))
        image_ids: list[str] = []
        executions = 0
        while True:
            answer = AnswerWriter(publisher, run, image_ids)
            code_steps: dict[int, CodeStep] = {}
            completion: Completion | None = None
            request = ChatRequest(
                model=run.model,
                messages=chat,
                tools=tools if tool_choice != "none" else [],
                tool_choice=tool_choice,
                temperature=run.options.get("temperature"),
                top_p=run.options.get("top_p"),
                max_tokens=_remaining(run.options.get("max_completion_tokens"), usage.completion_tokens),
                parallel_tool_calls=run.options.get("parallel_tool_calls") if tools else None,
            )
            tool_choice = None  # a forced tool applies to the first turn only, or the run could never end
            async for event in self._model.stream(request):
                if isinstance(event, TextDelta):
                    await answer.write(event.text)
                elif isinstance(event, ToolCallDelta):
                    step = code_steps.get(event.index)
                    if step is None and event.name == prompt.CODE_TOOL_NAME and code_enabled:
                        step = code_steps[event.index] = CodeStep(publisher, run, event.id)
                        await step.start()
                    if step is not None:
                        await step.arguments(event.arguments)
                else:
                    completion = event
            if completion is None:
                raise ModelError("The model's stream ended without a completion.", code="server_error")
            usage.add(completion)
            limit_hit = _limit_hit(run, usage, completion)
            if answer.started or not completion.tool_calls or limit_hit:
                # A message's own reason vocabulary differs from the run's (spec §1.3).
                message_reason = "max_tokens" if limit_hit else None
                await answer.finish(
                    partial(self._store_session_file, run.thread_id), turn_usage(completion), message_reason
                )
                image_ids = []
            if limit_hit:
                return await self._end(
                    publisher, run, RunStatus.INCOMPLETE, usage, incomplete_reason=limit_hit
                )
            if not completion.tool_calls:
                return await self._end(publisher, run, RunStatus.COMPLETED, usage)
            chat.append(_assistant_turn(completion))
            asked: list[ToolCall] = []
            for index, call in enumerate(completion.tool_calls):
                step = code_steps.get(index)
                if step is not None:
                    executions += 1
                    if executions > self._limits.max_tool_steps:
                        raise RunFailed(
                            f"The run reached its limit of {self._limits.max_tool_steps} code executions "
                            "without a final answer."
                        )
                    feedback, images = await self._execute(step, run, call, files, completion)
                    image_ids.extend(images)
                    chat.append(_tool_result(call, feedback))
                elif call.name in function_names:
                    asked.append(call)
                else:
                    chat.append(
                        _tool_result(call, f"Unknown tool '{call.name}'. Use only the tools offered.")
                    )
            if asked:
                tool_outputs = await self._ask_client(publisher, run, asked, completion)
                chat.extend(_tool_result(call, tool_outputs[call.id]) for call in asked)

    async def _execute(
        self, step: CodeStep, run: RunRecord, call: ToolCall, files: list[InputFile], completion: Completion
    ) -> tuple[str, list[str]]:
        code = await step.complete(call)
        execution = await self._sandbox.execute(run.thread_id, code, files)
        images = [
            outputs.StoredImage(await self._store_output(f"image-{i}.png", data))
            for i, data in enumerate(execution.images, start=1)
        ]
        await step.finish(code, outputs.step_outputs(execution, images), turn_usage(completion))
        return outputs.model_feedback(execution, images), [image.file_id for image in images]

    async def _ask_client(
        self, publisher: Publisher, run: RunRecord, calls: list[ToolCall], completion: Completion
    ) -> dict[str, str]:
        step = FunctionStep(publisher, run, calls)
        await step.start()
        waiter: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[run.id] = (step, waiter)
        required = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": step.wire_calls()}}
        await publisher.change(
            RunRecord,
            run.id,
            ("thread.run.requires_action",),
            status=RunStatus.REQUIRES_ACTION,
            required_action=required,
        )
        tool_outputs = await waiter
        await step.finish(tool_outputs, turn_usage(completion))
        return tool_outputs

    async def _end(
        self,
        publisher: Publisher,
        run: RunRecord,
        status: RunStatus,
        usage: _Usage,
        incomplete_reason: str | None = None,
    ) -> RunRecord:
        event = "thread.run.completed" if status is RunStatus.COMPLETED else "thread.run.incomplete"
        return await publisher.change(
            RunRecord,
            run.id,
            (event,),
            status=status,
            completed_at=now(),
            usage=usage.wire(),
            incomplete_reason=incomplete_reason,
        )

    async def _fail(
        self, publisher: Publisher, run: RunRecord, code: str, message: str, usage: _Usage
    ) -> RunRecord:
        return await publisher.change(
            RunRecord,
            run.id,
            ("thread.run.failed",),
            status=RunStatus.FAILED,
            failed_at=now(),
            last_error={"code": code, "message": message},
            usage=usage.wire(),
        )

    async def _store_output(self, filename: str, data: bytes) -> str:
        file_id = new_id("file-")
        path, size = await self._blobs.save_bytes(file_id, data)
        return await self._record_output(file_id, filename, path, size)

    async def _store_session_file(self, thread_id: str, name: str) -> str:
        """The thread's /mnt/data/<name> as an output file, copied in the kernel; NotFound if absent."""
        file_id = new_id("file-")

        async def copy(target: Path) -> int:
            return await self._sandbox.copy_file_out(thread_id, name, target)

        path, size = await self._blobs.save_with(file_id, copy)
        return await self._record_output(file_id, name, path, size)

    async def _record_output(self, file_id: str, filename: str, path: str, size: int) -> str:
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


def _remaining(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(1, limit - used)


def _limit_hit(run: RunRecord, usage: _Usage, completion: Completion) -> str | None:
    """Why the run must stop incomplete after this turn, if it must."""
    max_prompt = run.options.get("max_prompt_tokens")
    max_completion = run.options.get("max_completion_tokens")
    if max_prompt is not None and usage.prompt_tokens > max_prompt:
        return "max_prompt_tokens"
    if max_completion is not None and (
        usage.completion_tokens >= max_completion or completion.finish_reason == "length"
    ):
        return "max_completion_tokens"
    return None


def _tool_choice(choice: Any) -> Any:
    """The Assistants tool_choice in chat-completions terms ({"type":"code_interpreter"} → our tool)."""
    if isinstance(choice, dict) and choice.get("type") == "code_interpreter":
        return {"type": "function", "function": {"name": prompt.CODE_TOOL_NAME}}
    if choice == "auto":
        return None
    return choice


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


def _for_code_interpreter(attachment: dict[str, Any]) -> bool:
    tools = attachment.get("tools") or []
    return not tools or any(t.get("type") == "code_interpreter" for t in tools)


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
