"""The one agent loop of both API generations: model turn → code in the sandbox → feedback → … → answer.

Each model turn is streamed: text goes to the surface's message as it arrives, each code call to a
code sink whose input streams too. Function calls (the client's own tools) go back to the surface,
which either waits for their results (Assistants) or ends the run there (Responses).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from agentbox.engine import arguments, context, images, prompt, searching
from agentbox.engine.surface import (
    CodeSink,
    FunctionSink,
    Outcome,
    RunFailed,
    Searcher,
    SearchSink,
    Surface,
    Task,
)
from agentbox.errors import ContextTooLong, ModelError
from agentbox.fleet import Sandboxes
from agentbox.llm.base import ChatModel, ChatRequest, Completion, TextDelta, ToolCall, ToolCallDelta

log = logging.getLogger(__name__)

__all__ = ["AgentLoop", "LoopLimits", "RunFailed", "Usage"]

MAX_CORRECTIONS = 3
"""Malformed tool calls a run answers with an error before it fails: a model that cannot correct
itself would otherwise loop until the run expires."""


@dataclass(frozen=True, slots=True)
class LoopLimits:
    max_tool_steps: int


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


class AgentLoop:
    def __init__(
        self,
        model: ChatModel,
        sandbox: Sandboxes,
        limits: LoopLimits,
        searcher: Searcher | None = None,
    ) -> None:
        self._model = model
        self._sandbox = sandbox
        self._limits = limits
        self._searcher = searcher

    @property
    def sandbox(self) -> Sandboxes:
        return self._sandbox

    async def converse(self, task: Task, surface: Surface, usage: Usage) -> Outcome:
        """Drive the model and the sandbox until an answer, a limit, or a function call the surface
        hands back. ModelError and RunFailed end it early; the caller records them (and `usage`,
        which counts every model turn as it ends)."""
        chat = list(task.chat)
        capabilities = self._model.capabilities(task.model)
        shown = images.count_images(chat)
        if shown and not capabilities.vision:
            raise RunFailed(_no_vision(task.model, shown), code="invalid_prompt")
        window = capabilities.context_window
        # What the prompt may take, in estimated tokens; None: sent whole (no window, or not auto).
        budget = (
            context.prompt_budget(window, task.max_completion_tokens) if window and task.truncate else None
        )
        functions = [{"type": "function", "function": f} for f in task.functions]
        parameters = {f["name"]: f.get("parameters") for f in task.functions}
        tool_choice = task.tool_choice
        executions = searches = corrections = 0
        while True:
            builtin_left = task.max_tool_calls is None or executions + searches < task.max_tool_calls
            offer_code = task.code_enabled and builtin_left
            offer_search = task.file_search is not None and self._searcher is not None and builtin_left
            tools = (
                ([prompt.CODE_TOOL] if offer_code else [])
                + ([prompt.SEARCH_TOOL] if offer_search else [])
                + functions
            )
            offered = tools if tool_choice != "none" else []
            turn = _Turn(surface, offer_code, offer_search, set(parameters))
            request = ChatRequest(
                model=task.model,
                messages=chat,
                tools=offered,
                tool_choice=_offered(tool_choice, offer_code, offer_search),
                temperature=task.temperature,
                top_p=task.top_p,
                max_tokens=_remaining(task.max_completion_tokens, usage.completion_tokens),
                parallel_tool_calls=task.parallel_tool_calls if tools else None,
                response_format=task.response_format,
                reasoning_effort=task.reasoning_effort,
            )
            tool_choice = None  # a forced tool applies to the first turn only, or the run could never end
            completion: Completion | None = None
            for attempt in (1, 2):
                sent = chat if budget is None else context.fit(chat, budget, offered)
                try:
                    completion = await self._stream(dataclasses.replace(request, messages=sent), turn)
                    break
                except ContextTooLong as exc:
                    # Raised before any event: nothing of this turn was shown yet.
                    if not task.truncate or attempt == 2:
                        log.info("model %s refused the prompt as too long: %s", task.model, exc.message)
                        return Outcome("max_prompt_tokens")
                    # The estimate was short for this model: halve what is kept, for the rest of the run.
                    budget = context.estimate(sent, offered) // 2
            assert completion is not None
            usage.add(completion)
            message = turn.message
            limit_hit = _limit_hit(task, usage, completion)
            if message.started or not completion.tool_calls or limit_hit:
                await message.finish(completion, limit_hit)
            if limit_hit or not completion.tool_calls:
                return Outcome(limit_hit)
            chat.append(_assistant_turn(completion))
            asked: list[ToolCall] = []
            asked_sinks: list[FunctionSink | None] = []
            for index, call in enumerate(completion.tool_calls):
                code_sink = turn.code_calls.get(index)
                search_sink = turn.search_calls.get(index)
                queries: list[str] | str = []
                if code_sink is not None:
                    problem = arguments.code_problem(call.arguments)
                elif search_sink is not None:
                    queries = searching.queries_of(call.arguments)
                    problem = queries if isinstance(queries, str) else None
                elif call.name in parameters:
                    problem = arguments.function_problem(call.name, call.arguments, parameters[call.name])
                else:
                    problem = None
                if problem is not None:
                    corrections += 1
                    if corrections > MAX_CORRECTIONS:
                        raise RunFailed(
                            f"The model sent malformed tool arguments {corrections} times; last: {problem}"
                        )
                    sink = code_sink or search_sink or turn.function_calls.get(index)
                    if sink is not None:
                        await sink.reject(call, problem)
                    chat.append(tool_result(call.id, problem))
                elif code_sink is not None:
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
                elif search_sink is not None and isinstance(queries, list):
                    if searches >= self._limits.max_tool_steps:
                        raise RunFailed(
                            f"The run reached its limit of {self._limits.max_tool_steps} file searches "
                            "without a final answer."
                        )
                    assert self._searcher is not None and task.file_search is not None
                    feedback = await searching.run_call(
                        self._searcher,
                        task.file_search,
                        search_sink,
                        call,
                        queries,
                        task.search_calls_before + searches,
                    )
                    searches += 1
                    chat.append(tool_result(call.id, feedback))
                elif call.name in parameters:
                    if index not in turn.function_calls:
                        turn.function_calls[index] = await surface.function_call(call.id, call.name)
                    asked.append(call)
                    asked_sinks.append(turn.function_calls[index])
                else:
                    chat.append(
                        tool_result(call.id, f"Unknown tool '{call.name}'. Use only the tools offered.")
                    )
            if asked:
                results = await surface.function_results(asked, asked_sinks, completion)
                if results is None:
                    return Outcome(None)
                chat.extend(tool_result(call.id, results[call.id]) for call in asked)

    async def _stream(self, request: ChatRequest, turn: _Turn) -> Completion:
        """One model turn, its text and calls going to the surface as they arrive."""
        completion: Completion | None = None
        async for event in self._model.stream(request):
            if isinstance(event, TextDelta):
                await turn.message.write(event.text)
            elif isinstance(event, ToolCallDelta):
                sink = await turn.sink(event)
                if sink is not None:
                    await sink.arguments(event.arguments)
            else:
                completion = event
        if completion is None:
            raise ModelError("The model's stream ended without a completion.", code="server_error")
        return completion


class _Turn:
    """Where one model turn's answer and calls go, each call's sink made at its first piece."""

    def __init__(
        self, surface: Surface, offer_code: bool, offer_search: bool, function_names: set[str]
    ) -> None:
        self._surface = surface
        self._offer_code = offer_code
        self._offer_search = offer_search
        self._function_names = function_names
        self.message = surface.message()
        self.code_calls: dict[int, CodeSink] = {}
        self.search_calls: dict[int, SearchSink] = {}
        self.function_calls: dict[int, FunctionSink | None] = {}

    async def sink(self, event: ToolCallDelta) -> CodeSink | SearchSink | FunctionSink | None:
        index = event.index
        if (
            index not in self.code_calls
            and index not in self.search_calls
            and index not in self.function_calls
        ):
            if event.name == prompt.CODE_TOOL_NAME and self._offer_code:
                self.code_calls[index] = await self._surface.code_call(event.id)
            elif event.name == prompt.SEARCH_TOOL_NAME and self._offer_search:
                self.search_calls[index] = await self._surface.search_call(event.id)
            elif event.name is not None and event.name in self._function_names:
                self.function_calls[index] = await self._surface.function_call(event.id, event.name)
        return self.code_calls.get(index) or self.search_calls.get(index) or self.function_calls.get(index)


def _no_vision(model: str, count: int) -> str:
    return (
        f"The newest message has {count} image(s), but the model '{model}' is not configured to take "
        "images. If it accepts them, set vision = true for it in the models file "
        "(AGENTBOX_MODELS_FILE), or AGENTBOX_MODEL_VISION=true for the AGENTBOX_MODEL_BASE_URL "
        "endpoint; otherwise send the message without images."
    )


def _remaining(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(1, limit - used)


def _offered(choice: Any, offer_code: bool, offer_search: bool) -> Any:
    """A choice that forces a built-in tool is dropped when the tool is no longer offered."""
    forced = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if (forced == prompt.CODE_TOOL_NAME and not offer_code) or (
        forced == prompt.SEARCH_TOOL_NAME and not offer_search
    ):
        return None
    return choice


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


def search_tool_choice() -> dict[str, Any]:
    """The chat-completions tool_choice that forces the search tool (both generations' file_search)."""
    return {"type": "function", "function": {"name": prompt.SEARCH_TOOL_NAME}}


def _assistant_turn(completion: Completion) -> dict[str, Any]:
    return {
        "role": "assistant",
        # "" rather than null: llama-cpp-python's server refuses a null content (500), OpenAI takes both.
        "content": completion.text,
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
        "content": "",
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
