"""The one agent loop of both API generations: model turn → code in the sandbox → feedback → … → answer.

Each model turn is streamed: text goes to the surface's message as it arrives, each code call to a
code sink whose input streams too. Function calls (the client's own tools) go back to the surface,
which either waits for their results (Assistants) or ends the run there (Responses).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from agentbox.engine import prompt
from agentbox.engine.surface import CodeSink, FunctionSink, Outcome, Surface, Task
from agentbox.errors import AgentboxError, ModelError
from agentbox.llm.base import ChatModel, ChatRequest, Completion, TextDelta, ToolCall, ToolCallDelta
from agentbox.sandbox import SessionManager

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopLimits:
    max_tool_steps: int


class RunFailed(AgentboxError):
    """The run cannot go on; its message becomes the run's error."""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


class AgentLoop:
    def __init__(self, model: ChatModel, sandbox: SessionManager, limits: LoopLimits) -> None:
        self._model = model
        self._sandbox = sandbox
        self._limits = limits

    @property
    def sandbox(self) -> SessionManager:
        return self._sandbox

    async def converse(self, task: Task, surface: Surface, usage: Usage) -> Outcome:
        """Drive the model and the sandbox until an answer, a limit, or a function call the surface
        hands back. ModelError and RunFailed end it early; the caller records them (and `usage`,
        which counts every model turn as it ends)."""
        chat = list(task.chat)
        functions = [{"type": "function", "function": f} for f in task.functions]
        function_names = {f["name"] for f in task.functions}
        tool_choice = task.tool_choice
        executions = 0
        while True:
            offer_code = task.code_enabled and (
                task.max_tool_calls is None or executions < task.max_tool_calls
            )
            tools = ([prompt.CODE_TOOL] if offer_code else []) + functions
            message = surface.message()
            code_calls: dict[int, CodeSink] = {}
            function_calls: dict[int, FunctionSink | None] = {}
            completion: Completion | None = None
            request = ChatRequest(
                model=task.model,
                messages=chat,
                tools=tools if tool_choice != "none" else [],
                tool_choice=_offered(tool_choice, offer_code),
                temperature=task.temperature,
                top_p=task.top_p,
                max_tokens=_remaining(task.max_completion_tokens, usage.completion_tokens),
                parallel_tool_calls=task.parallel_tool_calls if tools else None,
                response_format=task.response_format,
            )
            tool_choice = None  # a forced tool applies to the first turn only, or the run could never end
            async for event in self._model.stream(request):
                if isinstance(event, TextDelta):
                    await message.write(event.text)
                elif isinstance(event, ToolCallDelta):
                    if event.index not in code_calls and event.index not in function_calls:
                        if event.name == prompt.CODE_TOOL_NAME and offer_code:
                            code_calls[event.index] = await surface.code_call(event.id)
                        elif event.name is not None and event.name in function_names:
                            function_calls[event.index] = await surface.function_call(event.id, event.name)
                    sink = code_calls.get(event.index) or function_calls.get(event.index)
                    if sink is not None:
                        await sink.arguments(event.arguments)
                else:
                    completion = event
            if completion is None:
                raise ModelError("The model's stream ended without a completion.", code="server_error")
            usage.add(completion)
            limit_hit = _limit_hit(task, usage, completion)
            if message.started or not completion.tool_calls or limit_hit:
                await message.finish(completion, limit_hit)
            if limit_hit or not completion.tool_calls:
                return Outcome(limit_hit)
            chat.append(_assistant_turn(completion))
            asked: list[ToolCall] = []
            asked_sinks: list[FunctionSink | None] = []
            for index, call in enumerate(completion.tool_calls):
                code_sink = code_calls.get(index)
                if code_sink is not None:
                    executions += 1
                    if executions > self._limits.max_tool_steps:
                        raise RunFailed(
                            f"The run reached its limit of {self._limits.max_tool_steps} code executions "
                            "without a final answer."
                        )
                    code = await code_sink.complete(call)
                    execution = await self._sandbox.execute(
                        task.session_key, code, task.files, on_output=code_sink.output
                    )
                    feedback = await code_sink.finish(code, execution, completion)
                    chat.append(tool_result(call.id, feedback))
                elif call.name in function_names:
                    if index not in function_calls:
                        function_calls[index] = await surface.function_call(call.id, call.name)
                    asked.append(call)
                    asked_sinks.append(function_calls[index])
                else:
                    chat.append(
                        tool_result(call.id, f"Unknown tool '{call.name}'. Use only the tools offered.")
                    )
            if asked:
                results = await surface.function_results(asked, asked_sinks, completion)
                if results is None:
                    return Outcome(None)
                chat.extend(tool_result(call.id, results[call.id]) for call in asked)


def _remaining(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(1, limit - used)


def _offered(choice: Any, offer_code: bool) -> Any:
    """A choice that forces the code tool is dropped when the tool is no longer offered."""
    forced = isinstance(choice, dict) and choice.get("function", {}).get("name") == prompt.CODE_TOOL_NAME
    return None if forced and not offer_code else choice


def _limit_hit(task: Task, usage: Usage, completion: Completion) -> str | None:
    """Why the run must stop incomplete after this turn, if it must."""
    if task.max_prompt_tokens is not None and usage.prompt_tokens > task.max_prompt_tokens:
        return "max_prompt_tokens"
    if task.max_completion_tokens is not None and (
        usage.completion_tokens >= task.max_completion_tokens or completion.finish_reason == "length"
    ):
        return "max_completion_tokens"
    return None


def code_tool_choice() -> dict[str, Any]:
    """The chat-completions tool_choice that forces the code tool (both generations' code_interpreter)."""
    return {"type": "function", "function": {"name": prompt.CODE_TOOL_NAME}}


def _assistant_turn(completion: Completion) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ],
    }


def code_call_turn(call_id: str, code: str) -> dict[str, Any]:
    """A past code call as the model's own turn, for a conversation rebuilt from stored items."""
    arguments = json.dumps({"code": code})
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": prompt.CODE_TOOL_NAME, "arguments": arguments},
            }
        ],
    }


def tool_result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}
