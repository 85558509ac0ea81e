"""Run steps for tool calls: a code_interpreter step per execution, a file_search step per search,
one step for function calls."""

from __future__ import annotations

import json
from typing import Any

import jiter

from agentbox.engine.citations import Markers
from agentbox.engine.publisher import Publisher
from agentbox.ids import new_id, now
from agentbox.llm.base import ToolCall
from agentbox.retrieval.results import SearchResult
from agentbox.store.records import RunRecord, StepRecord


def code_of(arguments: str) -> str:
    """The code of a tool call; models sometimes send the raw code instead of JSON arguments."""
    try:
        # strict=False: small models put raw newlines inside the JSON string of their code.
        parsed = json.loads(arguments, strict=False)
    except json.JSONDecodeError:
        return arguments
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else arguments


def partial_code(arguments: str) -> str:
    """The code seen so far in a streaming `{"code": "…` argument, or "" while it can't be told."""
    try:
        parsed = jiter.from_json(arguments.encode(), partial_mode="trailing-strings")
    except ValueError:
        return ""
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else ""


def _new_step(run: RunRecord, tool_calls: list[dict[str, Any]]) -> StepRecord:
    return StepRecord(
        id=new_id("step_"),
        created_at=now(),
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        type="tool_calls",
        status="in_progress",
        details={"type": "tool_calls", "tool_calls": tool_calls},
    )


class CodeStep:
    """One code execution as a step: created when the call starts, its input streamed, outputs added."""

    def __init__(self, publisher: Publisher, run: RunRecord, model_call_id: str | None) -> None:
        self._publisher = publisher
        self._run = run
        self.call_id = (
            model_call_id if model_call_id and model_call_id.startswith("call_") else new_id("call_")
        )
        self.model_call_id = model_call_id or self.call_id
        self.step: StepRecord | None = None
        self._arguments = ""
        self._streamed = ""
        self._logs_streamed = ""

    async def start(self) -> None:
        self.step = await self._publisher.add(
            _new_step(self._run, []), "thread.run.step.created", "thread.run.step.in_progress"
        )
        call = {"index": 0, "id": self.call_id, "type": "code_interpreter"}
        await self._delta({**call, "code_interpreter": {"input": "", "outputs": []}})

    async def arguments(self, piece: str) -> None:
        self._arguments += piece
        code = partial_code(self._arguments)
        if len(code) > len(self._streamed) and code.startswith(self._streamed):
            await self._input(code[len(self._streamed) :])

    async def complete(self, tool_call: ToolCall) -> str:
        """The call's final code; any input not yet streamed is sent now."""
        if self.step is None:
            await self.start()
        code = code_of(tool_call.arguments)
        if code.startswith(self._streamed) and len(code) > len(self._streamed):
            await self._input(code[len(self._streamed) :])
        return code

    async def output(self, text: str) -> None:
        """Output the running code just wrote, as a logs delta of the step's first output."""
        self._logs_streamed += text
        await self._output_delta(0, {"type": "logs", "logs": text})

    async def finish(self, code: str, outputs: list[dict[str, Any]], usage: dict[str, int]) -> None:
        assert self.step is not None
        for index, output in enumerate(outputs):
            if index == 0 and self._logs_streamed and output.get("type") == "logs":
                # Deltas add up: send only what the live deltas did not (the traceback, a note).
                logs: str = output["logs"]
                if logs.startswith(self._logs_streamed):
                    rest = logs[len(self._logs_streamed) :]
                    if rest:
                        await self._output_delta(0, {"type": "logs", "logs": rest})
                    continue
            await self._output_delta(index, output)
        details = {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": self.call_id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": code, "outputs": outputs},
                }
            ],
        }
        self.step = await self._publisher.change(
            StepRecord,
            self.step.id,
            ("thread.run.step.completed",),
            status="completed",
            details=details,
            completed_at=now(),
            usage=usage,
        )

    async def reject(self, arguments: str, problem: str) -> None:
        """The model's arguments were malformed: the step fails, showing what it sent and why."""
        if self.step is None:
            await self.start()
        assert self.step is not None
        details = {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": self.call_id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": arguments, "outputs": []},
                }
            ],
        }
        self.step = await self._publisher.change(
            StepRecord,
            self.step.id,
            ("thread.run.step.failed",),
            status="failed",
            details=details,
            failed_at=now(),
            last_error={"code": "server_error", "message": problem},
        )

    async def _output_delta(self, index: int, output: dict[str, Any]) -> None:
        await self._delta(
            {
                "index": 0,
                "type": "code_interpreter",
                "code_interpreter": {"outputs": [{"index": index, **output}]},
            }
        )

    async def _input(self, text: str) -> None:
        self._streamed += text
        await self._delta({"index": 0, "type": "code_interpreter", "code_interpreter": {"input": text}})

    async def _delta(self, tool_call: dict[str, Any]) -> None:
        assert self.step is not None
        delta = {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}}
        await self._publisher.delta("thread.run.step.delta", self.step.id, delta)


class FunctionStep:
    """The client's function calls of one model turn: the step shown while the run requires action."""

    def __init__(self, publisher: Publisher, run: RunRecord, calls: list[ToolCall]) -> None:
        self._publisher = publisher
        self._run = run
        self.calls = calls
        self.step: StepRecord | None = None

    def wire_calls(self, outputs: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": c.arguments,
                    "output": None if outputs is None else outputs.get(c.id),
                },
            }
            for c in self.calls
        ]

    async def start(self) -> None:
        self.step = await self._publisher.add(
            _new_step(self._run, self.wire_calls()), "thread.run.step.created", "thread.run.step.in_progress"
        )

    async def finish(self, outputs: dict[str, str], usage: dict[str, int]) -> None:
        assert self.step is not None
        self.step = await self._publisher.change(
            StepRecord,
            self.step.id,
            ("thread.run.step.completed",),
            status="completed",
            details={"type": "tool_calls", "tool_calls": self.wire_calls(outputs)},
            completed_at=now(),
            usage=usage,
        )


class SearchStep:
    """One file_search call as a tool_calls step: created when the call starts, its results added.

    The step keeps every result's passage; the wire shows them only when asked with include[]
    (api/wire.py), as OpenAI does. `markers` is the run's: this call's are added to it, so the
    run's answers can cite them."""

    def __init__(
        self,
        publisher: Publisher,
        run: RunRecord,
        model_call_id: str | None,
        ranking_options: dict[str, Any],
        markers: Markers,
    ) -> None:
        self._publisher = publisher
        self._run = run
        self.call_id = (
            model_call_id if model_call_id and model_call_id.startswith("call_") else new_id("call_")
        )
        self._ranking_options = ranking_options
        self._markers = markers
        self.step: StepRecord | None = None

    async def start(self) -> None:
        call = {"id": self.call_id, "type": "file_search", "file_search": {}}
        self.step = await self._publisher.add(
            _new_step(self._run, [call]), "thread.run.step.created", "thread.run.step.in_progress"
        )
        delta = {"step_details": {"type": "tool_calls", "tool_calls": [{"index": 0, **call}]}}
        await self._publisher.delta("thread.run.step.delta", self.step.id, delta)

    async def arguments(self, piece: str) -> None:
        """The queries are not part of an Assistants file_search step: nothing to stream."""

    async def searching(self, queries: list[str]) -> None:
        if self.step is None:
            await self.start()

    async def finish(self, queries: list[str], results: list[SearchResult], markers: Markers) -> None:
        assert self.step is not None
        self._markers.update(markers)
        found = [
            {
                "file_id": r.file_id,
                "file_name": r.filename,
                "score": r.score,
                "content": [{"type": "text", "text": r.text}],
            }
            for r in results
        ]
        call = {
            "id": self.call_id,
            "type": "file_search",
            "file_search": {"ranking_options": self._ranking_options, "results": found},
        }
        self.step = await self._publisher.change(
            StepRecord,
            self.step.id,
            ("thread.run.step.completed",),
            status="completed",
            details={"type": "tool_calls", "tool_calls": [call]},
            completed_at=now(),
        )

    async def reject(self, call: ToolCall, problem: str) -> None:
        """Malformed queries, or a store the search refused: the step fails with the reason."""
        if self.step is None:
            await self.start()
        assert self.step is not None
        self.step = await self._publisher.change(
            StepRecord,
            self.step.id,
            ("thread.run.step.failed",),
            status="failed",
            failed_at=now(),
            last_error={"code": "server_error", "message": problem},
        )
