"""OpenAI's attribute filters: comparisons, compounds, and 400s for malformed ones."""

from __future__ import annotations

from typing import Any

import pytest

from agentbox.errors import InvalidRequest
from agentbox.retrieval.filters import matches, validate

FILE = {"author": "ann", "year": 2023, "score": 4.5, "draft": False, "date": "2024-03-01"}


def eq(key: str, value: Any, kind: str = "eq") -> dict[str, Any]:
    return {"type": kind, "key": key, "value": value}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (eq("author", "ann"), True),
        (eq("author", "bob"), False),
        (eq("year", 2023.0), True),
        (eq("year", "2023"), False),  # kinds never mix
        (eq("draft", False), True),
        (eq("draft", 0), False),
        (eq("author", "bob", "ne"), True),
        (eq("missing", "x", "ne"), True),
        (eq("missing", "x"), False),
        (eq("year", 2022, "gt"), True),
        (eq("year", 2023, "gt"), False),
        (eq("year", 2023, "gte"), True),
        (eq("score", 5, "lt"), True),
        (eq("score", 4.5, "lte"), True),
        (eq("date", "2024-01-01", "gt"), True),  # ISO dates as strings order correctly
        (eq("year", "2022", "gt"), False),
        (eq("missing", 1, "lt"), False),
        (eq("author", ["bob", "ann"], "in"), True),
        (eq("author", ["bob"], "in"), False),
        (eq("author", ["bob"], "nin"), True),
        (eq("missing", ["bob"], "nin"), True),
        ({"type": "and", "filters": [eq("author", "ann"), eq("year", 2020, "gt")]}, True),
        ({"type": "and", "filters": [eq("author", "ann"), eq("year", 2024, "gt")]}, False),
        ({"type": "or", "filters": [eq("author", "bob"), eq("draft", False)]}, True),
        (
            {
                "type": "or",
                "filters": [
                    eq("author", "bob"),
                    {"type": "and", "filters": [eq("year", 2023), eq("score", 4)]},
                ],
            },
            False,
        ),
        (None, True),
    ],
)
def test_matches(condition: dict[str, Any] | None, expected: bool) -> None:
    if condition is not None:
        validate(condition)
    assert matches(condition, FILE) is expected


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("author = ann", "must be an object"),
        ({"type": "like", "key": "a", "value": "b"}, "must be one of"),
        ({"type": "eq", "value": "b"}, "key' must be a string"),
        ({"type": "eq", "key": "a"}, "value' is required"),
        ({"type": "eq", "key": "a", "value": None}, "not null"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "not an object"),
        ({"type": "in", "key": "a", "value": "b"}, "must be an array"),
        ({"type": "and", "filters": []}, "non-empty array"),
        ({"type": "or", "filters": [{"type": "eq"}]}, "filters.filters[0].key"),
    ],
)
def test_malformed_filters_are_400s(condition: Any, says: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(condition)
    assert says in caught.value.message
    assert caught.value.param is not None and caught.value.param.startswith("filters")


def test_deep_nesting_is_refused() -> None:
    condition: dict[str, Any] = eq("a", 1)
    for _ in range(40):
        condition = {"type": "and", "filters": [condition]}
    with pytest.raises(InvalidRequest, match="deep"):
        validate(condition)
