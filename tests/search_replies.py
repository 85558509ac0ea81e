"""The scripted model's side of file_search: a turn that calls the tool agentbox offers, and the
marker the search gave a passage, read back from the tool result the model was sent."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.scripted_model import Chunks, Messages, last_tool_output

PASSAGE = re.compile(r"(【\d+:\d+†[^】]*】)\n([^【]*)")
"""A passage in the tool result: its marker on a line, then its text."""


def search_call(*queries: str) -> Chunks:
    """A model turn that calls the file_search tool agentbox offers, its arguments streamed."""
    base = {"id": "chatcmpl-search", "object": "chat.completion.chunk", "created": 0, "model": "scripted"}
    call = {"index": 0, "id": "call_search", "type": "function"}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": ""},
        {"tool_calls": [{**call, "function": {"name": "file_search", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": json.dumps({"queries": list(queries)})}}]},
    ]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": usage}
    )
    return Chunks(chunks)


def marker_of(messages: Messages, words: str) -> str:
    """The marker the search gave the passage holding `words`."""
    for marker, passage in PASSAGE.findall(last_tool_output(messages)):
        if words in passage:
            return marker
    raise AssertionError(f"no passage with {words!r} in: {last_tool_output(messages)}")
