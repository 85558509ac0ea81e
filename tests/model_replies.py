"""Scripted replies the scripted model has no shorthand for: a function call with these exact arguments."""

from __future__ import annotations

import itertools

from tests.scripted_model import Chunks

_ids = itertools.count(1)


def function_call(name: str, arguments: str) -> Chunks:
    """The model calls `name` with `arguments` sent as they are (valid JSON or not), in one piece."""
    call = {
        "index": 0,
        "id": f"call_raw{next(_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    base = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 0, "model": "scripted"}
    return Chunks(
        [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]},
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        ]
    )
