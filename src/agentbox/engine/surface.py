"""What the agent loop needs from an API generation: where its text, code and function calls go.

The loop (engine/loop.py) is the same for Assistants runs and Responses; each generation implements
a Surface that turns the loop's progress into its own objects and events — run steps and messages
for a run, output items and `response.*` events for a response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agentbox.engine.citations import Markers
from agentbox.errors import AgentboxError
from agentbox.llm.base import Completion, ToolCall
from agentbox.retrieval.results import SearchRequest, SearchResult
from agentbox.sandbox import Execution, InputFile


class RunFailed(AgentboxError):
    """The run cannot go on; its message becomes the run's error (its code, else server_error)."""


DEFAULT_MAX_RESULTS = 20
"""Passages a file_search call returns unless its tool says otherwise (OpenAI's default)."""


@dataclass(frozen=True, slots=True)
class FileSearchSpec:
    """The file_search tool of one run: where it searches and how many passages it returns."""

    vector_store_ids: list[str]
    max_num_results: int = DEFAULT_MAX_RESULTS
    filters: dict[str, Any] | None = None
    ranker: str = "auto"
    score_threshold: float = 0.0


@dataclass(frozen=True, slots=True)
class Task:
    """One agent run in chat-completions terms: what the model is asked and where code runs."""

    model: str
    chat: list[dict[str, Any]]
    session_key: str
    files: list[InputFile] = field(default_factory=list)
    code_enabled: bool = False
    functions: list[dict[str, Any]] = field(default_factory=list)
    """Chat-completions function definitions: {"name", "description", "parameters", …}."""
    tool_choice: Any = None
    """Chat-completions form; applies to the first model turn only."""
    temperature: float | None = None
    top_p: float | None = None
    max_completion_tokens: int | None = None
    max_prompt_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = None
    """Most code executions the model may ask for; past it the code tool is no longer offered."""
    response_format: Any = None
    reasoning_effort: str | None = None
    file_search: FileSearchSpec | None = None
    """Offer the file_search tool over these vector stores."""
    search_calls_before: int = 0
    """Search calls already in `chat` (a Responses context rebuilt from stored items): this run's
    calls are numbered from here, so their citation markers never repeat earlier ones."""
    truncate: bool = False
    """Truncation auto: drop the oldest turns to fit the model's context window, and on the
    provider's context-length refusal cut harder and retry the turn once."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: completed, or incomplete with the limit that stopped it."""

    incomplete_reason: str | None
    """None, "max_completion_tokens" or "max_prompt_tokens" (also: the prompt did not fit the model)."""


class MessageSink(Protocol):
    """The answer of one model turn, created at its first token."""

    @property
    def started(self) -> bool: ...

    async def write(self, text: str) -> None: ...

    async def finish(self, completion: Completion, incomplete_reason: str | None) -> None:
        """Annotate and complete the answer (or cut it: incomplete_reason is a limit's name)."""
        ...


class CodeSink(Protocol):
    """One call of the code tool: started when the model starts writing it."""

    async def arguments(self, piece: str) -> None: ...

    async def complete(self, call: ToolCall) -> str:
        """The call's final code, once the model's turn is over."""
        ...

    async def output(self, stream: str, text: str) -> None:
        """What the running code just wrote ("stdout" or "stderr"), while it runs."""
        ...

    async def finish(self, code: str, execution: Execution, completion: Completion) -> str:
        """Record the execution's outputs; the tool result the model reads back."""
        ...

    async def reject(self, call: ToolCall, problem: str) -> None:
        """The call's arguments were malformed: nothing runs, the model is told `problem`."""
        ...


class FunctionSink(Protocol):
    """One call of a client's function, its arguments streaming."""

    async def arguments(self, piece: str) -> None: ...

    async def reject(self, call: ToolCall, problem: str) -> None:
        """The call's arguments were malformed: it is not handed to the client."""
        ...


class Searcher(Protocol):
    """Runs the model's file_search queries (engine/vector_stores.py)."""

    async def search(self, request: SearchRequest) -> list[SearchResult]: ...


class SearchSink(Protocol):
    """One call of the file_search tool: started when the model starts writing it."""

    async def arguments(self, piece: str) -> None: ...

    async def searching(self, queries: list[str]) -> None:
        """The queries are known and the search starts (Responses: `searching` event)."""
        ...

    async def finish(self, queries: list[str], results: list[SearchResult], markers: Markers) -> None:
        """Record what the search found (a run step, a file_search_call item). `markers` name each
        result as the model read it (engine/citations.py): the surface keeps them for the run, so its
        answers' citations resolve (citations.find / citations.remove)."""
        ...

    async def reject(self, call: ToolCall, problem: str) -> None: ...


class Surface(Protocol):
    def message(self) -> MessageSink: ...

    async def search_call(self, model_call_id: str | None) -> SearchSink: ...

    async def code_call(self, model_call_id: str | None) -> CodeSink: ...

    async def function_call(self, model_call_id: str | None, name: str) -> FunctionSink | None: ...

    async def function_results(
        self, calls: list[ToolCall], sinks: list[FunctionSink | None], completion: Completion
    ) -> dict[str, str] | None:
        """The client's results for its function calls (the run waits for them), or None when the
        run ends here and the client answers in a new request (Responses)."""
        ...
