"""What a vector store accepts, checked once for every caller (the API, tool_resources helpers):
chunking strategies, file attributes and expiry policies, in OpenAI's words (attribute filters:
retrieval/filters.py).

Each check raises InvalidRequest naming the parameter as the client wrote it.
"""

from __future__ import annotations

from typing import Any

from agentbox.errors import InvalidRequest
from agentbox.retrieval.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP, strategy_problem

AUTO: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": DEFAULT_MAX_TOKENS, "chunk_overlap_tokens": DEFAULT_OVERLAP},
}
"""What `auto` means, shown back on the file as OpenAI shows it."""

MAX_ATTRIBUTES = 16


def chunking(strategy: Any, param: str = "chunking_strategy") -> dict[str, Any] | None:
    """The strategy as stored ({"type": "static", "static": {…}}), or None when not given."""
    if strategy is None:
        return None
    if not isinstance(strategy, dict):
        raise InvalidRequest(f"Invalid value for '{param}': expected an object.", param=param)
    kind = strategy.get("type")
    if kind == "auto":
        return {"type": "static", "static": dict(AUTO["static"])}
    if kind != "static":
        raise InvalidRequest(
            f"Invalid value for '{param}.type': expected 'auto' or 'static', got {kind!r}.",
            param=f"{param}.type",
        )
    static = strategy.get("static")
    if not isinstance(static, dict):
        raise InvalidRequest(f"Missing required parameter: '{param}.static'.", param=f"{param}.static")
    size = _integer(static.get("max_chunk_size_tokens"), f"{param}.static.max_chunk_size_tokens")
    overlap = _integer(static.get("chunk_overlap_tokens"), f"{param}.static.chunk_overlap_tokens")
    problem = strategy_problem(size, overlap)
    if problem is not None:
        raise InvalidRequest(f"Invalid value for '{param}.static': {problem}", param=f"{param}.static")
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def _integer(value: Any, param: str) -> int:
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"Invalid value for '{param}': expected an integer.", param=param)
    return value


def attributes(value: Any, param: str = "attributes") -> dict[str, Any]:
    """At most 16 keys of ≤64 characters; values strings of ≤512 characters, numbers or booleans."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid value for '{param}': expected an object.", param=param)
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidRequest(
            f"Invalid value for '{param}': at most {MAX_ATTRIBUTES} attributes are allowed.", param=param
        )
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise InvalidRequest(
                f"Invalid value for '{param}': keys are 1 to 64 characters, got {key!r}.", param=param
            )
        if isinstance(item, str):
            if len(item) > 512:
                raise InvalidRequest(
                    f"Invalid value for '{param}.{key}': strings are at most 512 characters.",
                    param=f"{param}.{key}",
                )
        elif not isinstance(item, int | float | bool):
            raise InvalidRequest(
                f"Invalid value for '{param}.{key}': expected a string, a number or a boolean.",
                param=f"{param}.{key}",
            )
    return dict(value)


def expires_after(value: Any, param: str = "expires_after") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"Invalid value for '{param}': expected an object.", param=param)
    if value.get("anchor") != "last_active_at":
        raise InvalidRequest(
            f"Invalid value for '{param}.anchor': the only anchor is 'last_active_at'.",
            param=f"{param}.anchor",
        )
    days = _integer(value.get("days"), f"{param}.days")
    if not 1 <= days <= 365:
        raise InvalidRequest(
            f"Invalid value for '{param}.days': it must be between 1 and 365, got {days}.",
            param=f"{param}.days",
        )
    return {"anchor": "last_active_at", "days": days}
