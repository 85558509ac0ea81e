"""Fitting a conversation into the model's context window: estimate its size, drop the oldest turns.

Sizes are estimates (about four characters a token, a flat cost per image), not the provider's
tokenizer: agentbox talks to many models and ships none of their tokenizers. When the estimate is
short and the provider refuses the prompt anyway, the loop cuts harder and tries once more.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Chat = list[dict[str, Any]]

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1_000
"""An image's estimated cost: OpenAI bills a 1024x1024 image at high detail at 765 tokens."""
MESSAGE_TOKENS = 4
"""Each message's framing (role, separators) in the chat template."""
DEFAULT_ANSWER_TOKENS = 4_096
"""Room kept for the answer when the request sets no completion limit (at most a quarter of the window)."""


def estimate(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()) -> int:
    """The prompt's estimated size in tokens: its messages and the tool definitions offered."""
    total = len(json.dumps(list(tools))) // CHARS_PER_TOKEN if tools else 0
    return total + sum(_message_tokens(m) for m in messages)


def _message_tokens(message: dict[str, Any]) -> int:
    chars = 0
    images = 0
    content = message.get("content")
    if isinstance(content, str):
        chars += len(content)
    elif isinstance(content, list):
        for part in content:
            if part.get("type") == "image_url":
                images += 1
            else:
                chars += len(str(part.get("text", "")))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        chars += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    return MESSAGE_TOKENS + chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS


def prompt_budget(context_window: int, max_tokens: int | None) -> int:
    """Tokens the prompt may take: the window less the room kept for the answer."""
    answer = max_tokens if max_tokens is not None else min(DEFAULT_ANSWER_TOKENS, context_window // 4)
    return max(0, context_window - answer)


def fit(chat: Chat, budget: int, tools: Sequence[dict[str, Any]] = ()) -> Chat:
    """`chat` with its oldest turns dropped until its estimate fits `budget`.

    Never dropped: the first message (the system prompt) and the newest user message. An assistant
    turn and the tool results that answer its calls go together, so no result is left without its
    call. When even the kept messages are too long, they are returned as they are (the provider then
    decides).
    """
    if len(chat) <= 1 or estimate(chat, tools) <= budget:
        return chat
    newest_user = max((i for i, m in enumerate(chat) if m.get("role") == "user"), default=-1)
    groups = _turns(chat)
    size = estimate(chat, tools)
    dropped: set[int] = set()
    for group in groups:
        if size <= budget:
            break
        if 0 in group or newest_user in group:
            continue
        size -= sum(_message_tokens(chat[i]) for i in group)
        dropped.update(group)
    return [m for i, m in enumerate(chat) if i not in dropped]


def _turns(chat: Chat) -> list[list[int]]:
    """Message indexes grouped so an assistant turn with tool calls keeps its results, oldest first."""
    groups: list[list[int]] = []
    for index, message in enumerate(chat):
        if message.get("role") == "tool" and groups and _answers(chat, groups[-1], message):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _answers(chat: Chat, group: list[int], result: dict[str, Any]) -> bool:
    calls = {c.get("id") for c in chat[group[0]].get("tool_calls") or []}
    return result.get("tool_call_id") in calls
