"""What the engine needs from a model: one chat turn with tools, streamed as it is produced."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole model turn: its text, its tool calls and what it cost."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of tool call `index`: its id and name come with the first piece, arguments in pieces."""

    index: int
    id: str | None
    name: str | None
    arguments: str


ModelEvent = TextDelta | ToolCallDelta | Completion


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    response_format: Any = None
    """JSON mode or a json_schema, in chat-completions form; None for plain text."""
    reasoning_effort: str | None = None
    """"low", "medium" or "high" for reasoning models; None: the model's configured default."""


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """What the engine must know of a model to build its prompt (from the models file, or defaults)."""

    vision: bool = False
    """Images in user messages are sent as image_url parts; otherwise a run that has them fails."""
    context_window: int | None = None
    """Tokens the model accepts (prompt + answer); None: unknown, the prompt is not cut ahead."""


class ChatModel(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Deltas of one model turn as they arrive, then exactly one Completion.

        Raises ModelError when the endpoint fails or none is configured, ContextTooLong when the
        provider refuses the prompt as too long (before any event is yielded).
        """
        ...

    def capabilities(self, model: str) -> ModelCapabilities:
        """What `model` can take; raises ModelError when no configured provider serves it."""
        ...

    async def aclose(self) -> None: ...


async def closing_stream(events: AsyncIterator[ModelEvent]) -> AsyncGenerator[ModelEvent, None]:
    """The stream as a generator that closes it (and its HTTP response) when left early, not when
    collected: an abandoned turn must release its connection at once."""
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
