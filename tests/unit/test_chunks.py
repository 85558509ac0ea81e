"""The chunk reader against the shapes real servers send (recorded from llama.cpp, vLLM, Ollama)."""

from __future__ import annotations

import json
from typing import Any

from agentbox.llm.base import Completion, ModelEvent, TextDelta, ToolCallDelta
from agentbox.llm.chunks import ChunkReader


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def call(index: int | None = None, id: str | None = None, name: str | None = None, args: Any = None) -> dict:
    piece: dict[str, Any] = {"function": {}}
    if index is not None:
        piece["index"] = index
    if id is not None:
        piece["id"] = id
    if name is not None:
        piece["function"]["name"] = name
    if args is not None:
        piece["function"]["arguments"] = args
    return {"tool_calls": [piece]}


def read(*chunks: dict[str, Any], prompt_chars: int = 40) -> tuple[list[ModelEvent], Completion]:
    reader = ChunkReader(prompt_chars)
    events = [event for c in chunks for event in reader.feed(c)]
    return events, reader.completion()


def test_openai_shape_split_arguments_and_usage() -> None:
    events, done = read(
        chunk({"role": "assistant", "content": ""}),
        chunk(call(0, "call_a", "python", "")),
        chunk(call(0, args='{"code": ')),
        chunk(call(0, args='"1+1"}')),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}},
    )
    # The empty content "" beside the tool call is no text delta.
    assert events == [
        ToolCallDelta(0, "call_a", "python", ""),
        ToolCallDelta(0, None, None, '{"code": '),
        ToolCallDelta(0, None, None, '"1+1"}'),
    ]
    assert done.tool_calls[0].arguments == '{"code": "1+1"}' and done.tool_calls[0].id == "call_a"
    assert (done.prompt_tokens, done.completion_tokens, done.finish_reason) == (11, 3, "tool_calls")


def test_no_id_whole_arguments_as_object_and_stop_finish() -> None:
    # llama.cpp-style: the whole call in one chunk, no id, finish_reason "stop".
    events, done = read(chunk(call(0, name="python", args={"code": "print(2)"})), chunk({}, "stop"))
    (only,) = done.tool_calls
    assert only.id.startswith("call_") and len(only.id) > 10
    assert json.loads(only.arguments) == {"code": "print(2)"}
    assert events == [ToolCallDelta(0, only.id, "python", only.arguments)]
    assert done.finish_reason == "tool_calls"  # what the engine expects when it must run calls


def test_calls_without_index_and_ids_reused_under_one_index() -> None:
    _, done = read(
        chunk(call(None, "c1", "f", '{"a"')),
        chunk(call(None, None, None, ": 1}")),  # no index, no id: continues the newest call
        chunk(call(None, "c2", "g", "{}")),  # a new id: the next call
        chunk(call(0, "c3", "h", "{}")),  # index 0 seen... but first time for index 0: new
        chunk(call(0, "c4", "i", "{}")),  # index 0 again with another id: another call
        chunk({}, "eos"),
    )
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("c1", "f", '{"a": 1}'),
        ("c2", "g", "{}"),
        ("c3", "h", "{}"),
        ("c4", "i", "{}"),
    ]
    assert done.finish_reason == "tool_calls"


def test_sparse_server_indexes_are_renumbered_in_order() -> None:
    events, done = read(
        chunk(call(3, "x", "python", "{}")), chunk(call(7, "y", "f", "{}")), chunk({}, "tool_calls")
    )
    assert [e.index for e in events if isinstance(e, ToolCallDelta)] == [0, 1]
    assert [c.id for c in done.tool_calls] == ["x", "y"]


def test_arguments_before_the_name_are_held_until_the_name_comes() -> None:
    events, done = read(chunk(call(0, "a", None, '{"code":')), chunk(call(0, None, "python", ' "1"}')))
    # The engine decides what a call is by its first delta's name, so the first one carries it.
    assert events == [ToolCallDelta(0, "a", "python", '{"code": "1"}')]
    assert done.tool_calls[0].arguments == '{"code": "1"}'


def test_legacy_function_call_delta() -> None:
    _, done = read(
        chunk({"function_call": {"name": "python", "arguments": "{}"}}), chunk({}, "function_call")
    )
    assert [(c.name, c.arguments) for c in done.tool_calls] == [("python", "{}")]
    assert done.finish_reason == "tool_calls"


def test_a_function_call_repeating_the_tool_call_is_read_once() -> None:
    # llama-cpp-python 0.3.36 sends each piece twice in one delta, as tool_calls and as function_call.
    pieces = ['{"co', 'de": "1"}']
    _, done = read(
        *(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call__0", "function": {"name": "python", "arguments": p}}
                    ],
                    "function_call": {"name": "python", "arguments": p},
                }
            )
            for p in pieces
        ),
        chunk({}, "tool_calls"),
    )
    assert [(c.id, c.arguments) for c in done.tool_calls] == [("call__0", '{"code": "1"}')]


def test_no_usage_in_the_stream_is_estimated_from_characters() -> None:
    events, done = read(chunk({"content": "abcdefghi"}), chunk({}, "eos"), prompt_chars=401)
    assert events == [TextDelta("abcdefghi")]
    # chars / 4, rounded up: 401 prompt characters, 9 answer characters.
    assert (done.prompt_tokens, done.completion_tokens, done.finish_reason) == (101, 3, "stop")
