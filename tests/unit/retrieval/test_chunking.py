"""Chunks are windows of cl100k tokens with the asked overlap, exact slices of the text."""

from __future__ import annotations

import itertools

import pytest

from agentbox.retrieval.chunking import chunk_text, count_tokens, encoding, strategy_problem

PROSE = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(600))


def test_tokens_are_cl100k() -> None:
    assert encoding().encode_ordinary("hello world") == [15339, 1917]  # OpenAI's cl100k_base ids
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special tokens in user text are plain text


def test_short_text_is_one_chunk() -> None:
    assert chunk_text("A short note.") == ["A short note."]
    assert chunk_text("") == [] and chunk_text(" \n ") == []


@pytest.mark.parametrize(("size", "overlap"), [(800, 400), (100, 0), (100, 50), (4096, 2048), (250, 17)])
def test_windows_have_the_asked_size_and_overlap(size: int, overlap: int) -> None:
    chunks = chunk_text(PROSE, size, overlap)
    tokens = encoding().encode_ordinary(PROSE)
    step = size - overlap
    expected = max(1, -(-(len(tokens) - overlap) // step))  # windows until one reaches the end
    assert len(chunks) == expected
    for i, chunk in enumerate(chunks):
        assert chunk == encoding().decode(tokens[i * step : i * step + size])
        assert PROSE.startswith(chunk, PROSE.index(chunk))
    assert PROSE.startswith(chunks[0]) and PROSE.endswith(chunks[-1])


def test_consecutive_chunks_share_the_overlap() -> None:
    chunks = chunk_text(PROSE, 100, 50)
    for first, second in itertools.pairwise(chunks[:-1]):  # the last may be shorter than the overlap
        shared = encoding().decode(encoding().encode_ordinary(second)[:50])
        assert len(shared) > 100
        assert first.endswith(shared) and second.startswith(shared)


def test_characters_split_across_tokens_stay_whole() -> None:
    text = "日本語のテキスト 🎉🦘 ünïcödé " * 300
    chunks = chunk_text(text, 100, 30)
    assert len(chunks) > 5
    for chunk in chunks:
        assert "\ufffd" not in chunk
        assert chunk in text
        assert count_tokens(chunk) <= 102  # a window widened to whole characters gains a token or so


def test_lone_surrogates_do_not_break_it() -> None:
    assert chunk_text("bad \udcff byte") == ["bad ? byte"]


def test_bad_windows_raise() -> None:
    with pytest.raises(ValueError):
        chunk_text(PROSE, 100, 100)
    with pytest.raises(ValueError):
        chunk_text(PROSE, 0, 0)


@pytest.mark.parametrize(
    ("size", "overlap", "problem"),
    [
        (800, 400, None),
        (100, 0, None),
        (4096, 2048, None),
        (99, 0, "between 100 and 4096"),
        (4097, 0, "between 100 and 4096"),
        (800, 401, "half"),
        (800, -1, "negative"),
    ],
)
def test_openai_bounds(size: int, overlap: int, problem: str | None) -> None:
    said = strategy_problem(size, overlap)
    assert (said is None) if problem is None else (said is not None and problem in said)
