"""The chunk index over a real SQLite store: full text that no user text can break, cosine ranking."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from agentbox.retrieval import index
from agentbox.store.database import Store
from tests.unit.retrieval.conftest import chunk

T = TypeVar("T")

HOSTILE = [
    '"',
    '""',
    "dog\"'",
    "NEAR(dog cat, 2)",
    "dog AND",
    "OR",
    "NOT dog",
    "dog*",
    "^dog",
    "-dog",
    "text:dog",
    "{text}: dog",
    "(dog",
    "dog)",
    "a + b",
    "'; DROP TABLE chunks; --",
    "\x00dog",
    "🐕 dog",
    "Dög",
    "x" * 5000,
    " ".join(f"word{i}" for i in range(500)),
]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def indexed(store: Store) -> Store:
    run(
        index.add_chunks(
            store,
            [
                chunk("vs_a", "file_1", "The running dog barks at the mailman.", 0, [1.0, 0.0, 0.0]),
                chunk("vs_a", "file_1", "Cats sleep most of the day.", 1, [0.0, 1.0, 0.0]),
                chunk("vs_a", "file_2", "Dogs ran away from the angry goose.", 0, [0.7, 0.7, 0.0]),
                chunk("vs_b", "file_3", "A dog in another store entirely.", 0, [1.0, 0.0, 0.0]),
                chunk("vs_a", "file_4", "No embedding for this dog chunk.", 0, None),
                chunk("vs_a", "file_5", "An embedding of another model's size.", 0, [1.0, 0.0]),
            ],
        )
    )
    return store


def texts(store: Store, ranking: list[tuple[str, float]]) -> list[str]:
    found = run(index.get_chunks(store, [chunk_id for chunk_id, _ in ranking]))
    return [found[chunk_id].text for chunk_id, _ in ranking]


def test_full_text_ranks_stems_within_the_stores(indexed: Store) -> None:
    ranking = run(index.full_text(indexed, ["vs_a"], "dogs running", 10))
    found = texts(indexed, ranking)
    assert found[0] == "The running dog barks at the mailman."  # both stems match
    assert set(found) == {
        "The running dog barks at the mailman.",
        "Dogs ran away from the angry goose.",
        "No embedding for this dog chunk.",
    }
    assert all(score > 0 for _, score in ranking)
    assert [s for _, s in ranking] == sorted((s for _, s in ranking), reverse=True)


def test_full_text_limits(indexed: Store) -> None:
    assert len(run(index.full_text(indexed, ["vs_a", "vs_b"], "dog", 2))) == 2
    only = run(index.full_text(indexed, ["vs_a", "vs_b"], "dog", 10, {"file_3"}))
    assert texts(indexed, only) == ["A dog in another store entirely."]
    assert run(index.full_text(indexed, ["vs_a"], "dog", 10, set())) == []
    assert run(index.full_text(indexed, [], "dog", 10)) == []
    assert run(index.full_text(indexed, ["vs_a"], "zebra", 10)) == []


@pytest.mark.parametrize("query", HOSTILE)
def test_no_query_is_an_fts_syntax_error(indexed: Store, query: str) -> None:
    ranking = run(index.full_text(indexed, ["vs_a"], query, 10))
    if "dog" in query.lower() and "NOT" not in query:
        assert ranking, query


def test_match_expression_quotes_each_word() -> None:
    assert index.match_expression('What is "NEAR(dog*" in the text:') == '"near" OR "dog" OR "text"'
    assert index.match_expression("the of") == '"the" OR "of"'  # only common words: keep them
    assert index.match_expression("?! ___ --") is None
    expression = index.match_expression(" ".join(f"w{i}" for i in range(100)))
    assert expression is not None and expression.count(" OR ") == index.MAX_QUERY_TERMS - 1


def test_dense_is_cosine_over_matching_embeddings(indexed: Store) -> None:
    ranking = run(index.dense(indexed, ["vs_a"], [2.0, 0.0, 0.0], 10))
    assert texts(indexed, ranking) == [
        "The running dog barks at the mailman.",
        "Dogs ran away from the angry goose.",
        "Cats sleep most of the day.",
    ]
    assert [round(s, 3) for _, s in ranking] == [1.0, 0.707, 0.0]
    assert len(run(index.dense(indexed, ["vs_a", "vs_b"], [1.0, 0.0, 0.0], 2))) == 2
    assert run(index.dense(indexed, ["vs_a"], [1.0, 0.0, 0.0], 10, {"file_9"})) == []
    assert run(index.dense(indexed, ["vs_a"], [0.0, 0.0, 0.0], 10))  # a zero vector does not divide by 0


def test_remove_chunks(store: Store) -> None:
    run(index.add_chunks(store, [chunk("vs_x", "f1", "platypus one"), chunk("vs_x", "f2", "platypus two")]))
    run(index.add_chunks(store, [chunk("vs_y", "f1", "platypus three")]))
    run(index.remove_chunks(store, "vs_x", "f1"))
    left = texts(store, run(index.full_text(store, ["vs_x", "vs_y"], "platypus", 10)))
    assert sorted(left) == ["platypus three", "platypus two"]
    run(index.remove_chunks(store, "vs_x"))
    assert texts(store, run(index.full_text(store, ["vs_x", "vs_y"], "platypus", 10))) == ["platypus three"]
    assert run(index.get_chunks(store, [])) == {}


def test_dense_reads_stored_embeddings_after_a_restart(indexed: Store) -> None:
    warm = run(index.dense(indexed, ["vs_a", "vs_b"], [1.0, 0.2, 0.0], 10))
    index._VECTORS.pop(indexed, None)  # what a new process starts with
    assert run(index.dense(indexed, ["vs_a", "vs_b"], [1.0, 0.2, 0.0], 10)) == warm
    assert len(warm) == 4
