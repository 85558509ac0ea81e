"""OpenAI's attribute filters for file_search, checked and applied to a vector store file's attributes.

A comparison is {"type": eq|ne|gt|gte|lt|lte|in|nin, "key", "value"}; a compound is
{"type": and|or, "filters": [...]} of either. Values compare only with values of their own kind
(string, number, boolean): 1 never equals true, "5" never equals 5. gt/gte/lt/lte compare numbers,
or strings by code point (ISO dates order correctly). A missing key matches only ne and nin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentbox.errors import InvalidRequest

COMPARISONS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
COMPOUNDS = frozenset({"and", "or"})
MAX_DEPTH = 16


def validate(filters: Any, param: str = "filters") -> None:
    """InvalidRequest naming the first thing wrong with a filter, so bad input is a 400."""
    _check(filters, param, 0)


def _check(node: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"'{where}' nests filters more than {MAX_DEPTH} deep.", param=where)
    if not isinstance(node, Mapping):
        raise InvalidRequest(f"'{where}' must be an object, not {_kind(node)}.", param=where)
    kind = node.get("type")
    if kind in COMPOUNDS:
        parts = node.get("filters")
        if not isinstance(parts, list) or not parts:
            raise InvalidRequest(f"'{where}.filters' must be a non-empty array.", param=where)
        for i, part in enumerate(parts):
            _check(part, f"{where}.filters[{i}]", depth + 1)
        return
    if kind not in COMPARISONS:
        known = ", ".join(sorted(COMPARISONS | COMPOUNDS))
        raise InvalidRequest(f"'{where}.type' must be one of {known}; got {kind!r}.", param=where)
    if not isinstance(node.get("key"), str):
        raise InvalidRequest(f"'{where}.key' must be a string.", param=where)
    if "value" not in node:
        raise InvalidRequest(f"'{where}.value' is required.", param=where)
    value = node["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise InvalidRequest(
                f"'{where}.value' must be an array of strings, numbers or booleans for '{kind}'.",
                param=where,
            )
    elif not _scalar(value):
        raise InvalidRequest(
            f"'{where}.value' must be a string, number or boolean, not {_kind(value)}.", param=where
        )


def matches(filters: Mapping[str, Any] | None, attributes: Mapping[str, Any]) -> bool:
    """Whether attributes pass a (validated) filter; no filter passes everything."""
    if filters is None:
        return True
    kind = filters["type"]
    if kind == "and":
        return all(matches(part, attributes) for part in filters["filters"])
    if kind == "or":
        return any(matches(part, attributes) for part in filters["filters"])
    key, value = filters["key"], filters["value"]
    if key not in attributes:
        return kind in ("ne", "nin")
    have = attributes[key]
    if kind == "eq":
        return _equal(have, value)
    if kind == "ne":
        return not _equal(have, value)
    if kind == "in":
        return any(_equal(have, v) for v in value)
    if kind == "nin":
        return not any(_equal(have, v) for v in value)
    if (_number(have) and _number(value)) or (isinstance(have, str) and isinstance(value, str)):
        if kind == "gt":
            return bool(have > value)
        if kind == "gte":
            return bool(have >= value)
        if kind == "lt":
            return bool(have < value)
        return bool(have <= value)
    return False


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _number(a) and _number(b):
        return float(a) == float(b)
    return isinstance(a, str) and isinstance(b, str) and a == b


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", type(None): "null"}.get(type(value), type(value).__name__)
