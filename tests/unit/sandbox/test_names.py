from __future__ import annotations

import pytest

from agentbox.sandbox import safe_name
from agentbox.sandbox.names import relative_parts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/x.csv", "x.csv"),
        ("C:\\Users\\me\\data.csv", "data.csv"),
        ("a\nb\x00c.txt", "abc.txt"),
        ("e\u0301.txt", "\u00e9.txt"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
    ],
)
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


@pytest.mark.parametrize("raw", ["", ".", "..", "a/..", "/", "\x00"])
def test_safe_name_refuses_nothing_left(raw: str) -> None:
    with pytest.raises(ValueError):
        safe_name(raw)


def test_safe_name_caps_bytes_and_keeps_extension() -> None:
    name = safe_name("é" * 300 + ".csv")
    assert len(name.encode()) <= 200
    assert name.endswith(".csv")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "a/../b", "./a", "a//b", "a\x00"])
def test_relative_parts_refuses_escapes(bad: str) -> None:
    with pytest.raises(ValueError):
        relative_parts(bad)
