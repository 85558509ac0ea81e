"""Reading chat-completion chunks as real servers send them, not only as OpenAI documents them.

What differs between servers and is absorbed here (each has a test in tests/unit/test_chunks.py):
- a tool call without an id (some llama.cpp and Ollama versions): one is made, call_…;
- arguments whole in one chunk or split across many, or sent as a JSON object instead of a string;
- a tool call piece without an index: it continues the call its id names, else the newest call,
  unless it brings a new id or name (then it starts the next call);
- server indexes that are not 0, 1, 2…: calls are renumbered in order of appearance, as the engine
  pairs stream indexes with the completion's list;
- finish_reason "stop", "eos" or "function_call" on a turn that made tool calls: "tool_calls";
- the legacy `function_call` delta: one tool call;
- an empty content "" beside tool calls: no text;
- no usage in the stream: prompt and completion tokens are estimated as characters / 4.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from agentbox.llm.base import Completion, ModelEvent, TextDelta, ToolCall, ToolCallDelta


@dataclass(slots=True)
class _Call:
    id: str
    server_id: str | None
    name: str = ""
    arguments: str = ""
    announced: bool = False
    """The engine has seen its first delta (id and name); later deltas carry arguments only."""


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of the prompt's text (images are not counted), for the usage estimate."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
        for call in message.get("tool_calls") or []:
            total += len(str(call.get("function", {}).get("arguments", "")))
    return total


class ChunkReader:
    """Turns parsed chunks into the engine's events, and the whole turn into one Completion."""

    def __init__(self, prompt_chars: int) -> None:
        self._prompt_chars = prompt_chars
        self._text: list[str] = []
        self._calls: list[_Call] = []
        self._by_index: dict[int, int] = {}
        self._usage: tuple[int, int] | None = None
        self.finish_reason: str | None = None

    @property
    def output_chars(self) -> int:
        return sum(map(len, self._text))

    @property
    def call_count(self) -> int:
        return len(self._calls)

    def feed(self, chunk: dict[str, Any]) -> list[ModelEvent]:
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            self._usage = (usage["prompt_tokens"], int(usage.get("completion_tokens") or 0))
        choices = chunk.get("choices") or []
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            return []
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        # A chunk with "message" instead of "delta": a server that answered a whole turn at once.
        delta = choice.get("delta") or choice.get("message") or {}
        events: list[ModelEvent] = []
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text.append(content)
            events.append(TextDelta(content))
        for piece in delta.get("tool_calls") or []:
            if isinstance(piece, dict):
                events.extend(self._piece(piece))
        legacy = delta.get("function_call")
        # llama-cpp-python repeats each tool_calls piece as a legacy function_call: read one of them.
        if isinstance(legacy, dict) and not delta.get("tool_calls"):
            events.extend(self._piece({"index": 0, "function": legacy}))
        return events

    def completion(self) -> Completion:
        finish = self.finish_reason
        if self._calls and finish in (None, "stop", "eos", "function_call", "tool_call"):
            finish = "tool_calls"
        elif finish == "eos":
            finish = "stop"
        if self._usage is not None:
            prompt_tokens, completion_tokens = self._usage
        else:
            prompt_tokens = estimate_tokens(self._prompt_chars)
            out = self.output_chars + sum(len(c.name) + len(c.arguments) for c in self._calls)
            completion_tokens = estimate_tokens(out)
        return Completion(
            text="".join(self._text),
            tool_calls=tuple(ToolCall(c.id, c.name, c.arguments) for c in self._calls),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
        )

    def _piece(self, piece: dict[str, Any]) -> list[ModelEvent]:
        function = piece.get("function") or {}
        name = function.get("name") or None
        arguments = function.get("arguments")
        if arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        server_id = piece.get("id") or None
        slot = self._slot(piece.get("index"), server_id, name)
        call = self._calls[slot]
        if name and not call.name:
            call.name = name
        call.arguments += arguments
        if not call.name:
            return []  # held back: the engine decides what a call is by its first delta's name
        if not call.announced:
            call.announced = True
            return [ToolCallDelta(slot, call.id, call.name, call.arguments)]
        return [ToolCallDelta(slot, None, None, arguments)] if arguments else []

    def _slot(self, index: Any, server_id: str | None, name: str | None) -> int:
        if isinstance(index, int):
            slot = self._by_index.get(index)
            # Some servers number every call 0; a new id under a used index is a new call.
            if slot is not None and not (
                server_id and self._calls[slot].server_id and server_id != self._calls[slot].server_id
            ):
                return slot
            self._by_index[index] = len(self._calls)
            return self._new(server_id)
        for slot, call in enumerate(self._calls):
            if server_id and call.server_id == server_id:
                return slot
        last = self._calls[-1] if self._calls else None
        if last is not None and not server_id and (not name or not last.name):
            return len(self._calls) - 1
        return self._new(server_id)

    def _new(self, server_id: str | None) -> int:
        self._calls.append(_Call(server_id or new_call_id(), server_id))
        return len(self._calls) - 1
