"""stream_fenced: a model without tool calling asks for code in ```python blocks and reads the output
as a user message. Driven with a small async generator standing for the provider's stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentbox.llm.base import ChatRequest, Completion, ModelEvent, TextDelta, ToolCallDelta
from agentbox.llm.fenced import stream_fenced

CODE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in a stateful sandbox.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass
class Provider:
    """Streams a scripted answer in pieces of `size` characters, recording what it was asked."""

    answer: str
    size: int = 7
    whole: bool = False  # send the answer only in the Completion, as a non-streaming server would
    requests: list[ChatRequest] = field(default_factory=list)
    pieces_sent: int = 0
    closed: bool = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        try:
            if not self.whole:
                for i in range(0, len(self.answer), self.size):
                    self.pieces_sent += 1
                    yield TextDelta(self.answer[i : i + self.size])
            yield Completion(self.answer, prompt_tokens=120, completion_tokens=30, finish_reason="stop")
        finally:
            self.closed = True


def run(provider: Provider, request: ChatRequest) -> list[ModelEvent]:
    async def collect() -> list[ModelEvent]:
        return [event async for event in stream_fenced(provider.stream, request)]

    return asyncio.run(collect())


def request(
    *tools: dict[str, Any], messages: list[dict[str, Any]] | None = None, **options: Any
) -> ChatRequest:
    chat = messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6 times 7?"}]
    return ChatRequest(model="small", messages=chat, tools=list(tools), parallel_tool_calls=True, **options)


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def arguments_of(events: list[ModelEvent]) -> str:
    return "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))


def completion_of(events: list[ModelEvent]) -> Completion:
    assert isinstance(events[-1], Completion)
    assert sum(isinstance(e, Completion) for e in events) == 1
    return events[-1]


ANSWER = (
    "Let me compute it.\n\n"
    "```python\n"
    "x = 6 * 7\n"
    "\n"
    'print(f"{x}")  # "quoted" \\n\n'
    "```\n"
    "Output: 42\n"  # the model's guess at the output: never shown, never waited for
    "The answer is 42."
)
CODE = 'x = 6 * 7\n\nprint(f"{x}")  # "quoted" \\n'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 1000])
def test_a_python_block_becomes_a_code_call_whatever_the_chunking(size: int) -> None:
    provider = Provider(ANSWER, size=size)
    events = run(provider, request(CODE_TOOL))

    assert text_of(events) == "Let me compute it."
    assert not any("`" in e.text for e in events if isinstance(e, TextDelta))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].id is not None and deltas[0].id.startswith("call_")
    assert deltas[0].name == "python"
    assert all(d.index == 0 and d.id is None and d.name is None for d in deltas[1:])
    assert json.loads(arguments_of(events)) == {"code": CODE}
    completion = completion_of(events)
    assert completion.text == "Let me compute it."
    assert completion.finish_reason == "tool_calls"
    [call] = completion.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == (deltas[0].id, "python", {"code": CODE})
    # The turn ends with the block: the rest is not read, and the provider's stream is closed.
    assert provider.closed
    assert provider.pieces_sent <= -(-ANSWER.index("Output:") // size)
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0  # estimated, not reported


def test_the_code_streams_as_the_model_writes_it() -> None:
    provider = Provider("```python\nprint('first line')\nprint('second')\n```\n", size=4)
    events = run(provider, request(CODE_TOOL))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) > 4  # many pieces, not one at the end
    assert json.loads(arguments_of(events)) == {"code": "print('first line')\nprint('second')"}


def test_the_request_offers_no_tools_and_says_how_to_run_code() -> None:
    provider = Provider("Hi.")
    run(provider, request(CODE_TOOL, tool_choice="auto"))
    [sent] = provider.requests
    assert (sent.tools, sent.tool_choice, sent.parallel_tool_calls) == ([], None, None)
    system = sent.messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be brief.\n\n")
    assert "```python" in system["content"]
    assert "Output of the code:" in system["content"]
    assert "Run Python code in a stateful sandbox." in system["content"]  # the tool's own description
    assert sent.messages[1:] == [{"role": "user", "content": "6 times 7?"}]


def test_a_forced_code_tool_is_asked_for_in_words() -> None:
    provider = Provider("Hi.")
    forced = {"type": "function", "function": {"name": "python"}}
    run(provider, request(CODE_TOOL, tool_choice=forced))
    assert "Answer this turn with a ```python block." in provider.requests[0].messages[0]["content"]


def test_history_tool_calls_and_results_are_rewritten_as_text() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "6 times 7?"},
        {
            "role": "assistant",
            "content": "Computing.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "python", "arguments": '{"code": "6*7"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "42"},
        {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
        {"role": "user", "content": "Thanks. And 7 times 8?"},
    ]
    provider = Provider("56.")
    run(provider, request(CODE_TOOL, WEATHER, messages=messages))
    sent = provider.requests[0].messages
    assert sent[0]["role"] == "system"  # added: the conversation had none
    assert "get_weather" in sent[0]["content"]
    assert sent[1:] == [
        {"role": "user", "content": "6 times 7?"},
        {
            "role": "assistant",
            "content": 'Computing.\n\n```python\n6*7\n```\n\n```json\n{"name": "get_weather", '
            '"arguments": {"city": "Paris"}}\n```',
        },
        # One user message: many chat templates refuse two in a row.
        {
            "role": "user",
            "content": "Output of the code:\n42\n\nResult of get_weather:\nsunny\n\nThanks. And 7 times 8?",
        },
    ]
    assert all("tool_calls" not in m and m["role"] != "tool" for m in sent)


def test_an_answer_without_code_streams_through_unchanged() -> None:
    answer = "Use this command:\n\n```bash\nls -l\n```\n\n```\n```python in plain text\n```\nDone.\n"
    provider = Provider(answer, size=3)
    events = run(provider, request(CODE_TOOL))
    assert text_of(events) == answer
    completion = completion_of(events)
    assert (completion.text, completion.tool_calls, completion.finish_reason) == (answer, (), "stop")
    assert (completion.prompt_tokens, completion.completion_tokens) == (120, 30)  # the provider's own


def test_an_unclosed_python_block_at_the_end_still_runs() -> None:
    events = run(Provider("```python\nprint(1)"), request(CODE_TOOL))
    completion = completion_of(events)
    assert [json.loads(c.arguments) for c in completion.tool_calls] == [{"code": "print(1)"}]
    assert (completion.prompt_tokens, completion.completion_tokens) == (120, 30)


def test_an_indented_block_is_dedented() -> None:
    events = run(
        Provider("1. Run:\n   ```python\n   for i in range(2):\n       print(i)\n   ```\n"),
        request(CODE_TOOL),
    )
    assert json.loads(arguments_of(events)) == {"code": "for i in range(2):\n    print(i)"}
    assert text_of(events) == "1. Run:"


def test_an_answer_sent_whole_is_read_too() -> None:
    events = run(Provider(ANSWER, whole=True), request(CODE_TOOL))
    assert text_of(events) == "Let me compute it."
    assert [json.loads(c.arguments) for c in completion_of(events).tool_calls] == [{"code": CODE}]


def test_without_the_code_tool_a_python_block_is_only_text() -> None:
    events = run(Provider(ANSWER), request())
    assert text_of(events) == ANSWER
    assert completion_of(events).tool_calls == ()


def test_a_json_block_naming_an_offered_function_calls_it() -> None:
    answer = 'Checking.\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\nIt is sunny.'
    events = run(Provider(answer, size=4), request(CODE_TOOL, WEATHER))
    assert text_of(events) == "Checking."
    [call] = completion_of(events).tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    [delta] = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (delta.id, delta.name, delta.arguments) == (call.id, "get_weather", call.arguments)


def test_other_json_is_shown_as_written() -> None:
    answer = 'Here:\n```json\n{"name": "Ada", "age": 36}\n```\nThat is all.'
    events = run(Provider(answer, size=4), request(CODE_TOOL, WEATHER))
    assert text_of(events) == answer
    assert completion_of(events).tool_calls == ()
