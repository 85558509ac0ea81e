"""One search over real stored chunks: filters first, full text and dense fused, scores in [0, 1]."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import pytest

from agentbox.errors import InvalidRequest
from agentbox.retrieval import embeddings, index
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.results import SearchRequest, SearchResult
from agentbox.retrieval.search import search
from agentbox.store.database import Store
from tests.scripted_embeddings import vector
from tests.scripted_model import ScriptedModel
from tests.unit.retrieval.conftest import chunk

FILES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "file_car": ("car.txt", {"kind": "manual", "year": 2021}, "vs_one", "The sedan needs new tyres."),
    "file_bake": (
        "bake.md",
        {"kind": "recipe", "year": 2023},
        "vs_one",
        "A sourdough loaf needs a long proof.",
    ),
    "file_roo": (
        "roo.pdf",
        {"kind": "wildlife", "year": 2023},
        "vs_one",
        "The quokka lives on Rottnest Island.",
    ),
    "file_wild": ("wild.docx", {"kind": "wildlife"}, "vs_two", "A wallaby is not a quokka, though both hop."),
    "file_pending": ("draft.txt", {}, "vs_one", "Quokka notes still being ingested."),
}
NAMES = {file_id: name for file_id, (name, _, _, _) in FILES.items()}
ATTRIBUTES = {file_id: attrs for file_id, (_, attrs, _, _) in FILES.items()}
READY = set(FILES) - {"file_pending"}


@pytest.fixture(scope="module")
def corpus(store: Store) -> Store:
    records = [chunk(vs, file_id, text, 0, vector(text)) for file_id, (_, _, vs, text) in FILES.items()]
    asyncio.run(index.add_chunks(store, records))
    return store


def find(
    store: Store,
    query: str,
    *,
    embedder: Embedder | None = None,
    stores: tuple[str, ...] = ("vs_one",),
    allowed: Collection[str] | None = READY,
    **options: Any,
) -> list[SearchResult]:
    request = SearchRequest(vector_store_ids=list(stores), query=query, **options)
    return asyncio.run(search(store, embedder, request, NAMES, ATTRIBUTES, allowed))


def embedder(scripted_model: ScriptedModel) -> Embedder:
    return Embedder(scripted_model.base_url, "m", max_retries=0)


def test_full_text_alone(corpus: Store) -> None:
    results = find(corpus, "Where does the quokka live?")
    assert [r.file_id for r in results] == ["file_roo"]  # the pending file is not allowed in
    (best,) = results
    assert best.filename == "roo.pdf" and best.vector_store_id == "vs_one"
    assert best.text == "The quokka lives on Rottnest Island."
    assert best.attributes == {"kind": "wildlife", "year": 2023}
    assert best.score == 1.0


def test_every_file_of_the_stores_without_allowed(corpus: Store) -> None:
    found = {r.file_id for r in find(corpus, "quokka", stores=("vs_one", "vs_two"), allowed=None)}
    assert found == {"file_roo", "file_wild", "file_pending"}


def test_scores_descend_within_bounds_and_are_cut(corpus: Store) -> None:
    results = find(corpus, "quokka needs", stores=("vs_one", "vs_two"))
    assert len(results) == 4
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert len(find(corpus, "quokka needs", stores=("vs_one", "vs_two"), max_num_results=2)) == 2
    assert find(corpus, "quokka", max_num_results=0) == []
    strict = find(corpus, "quokka needs", stores=("vs_one", "vs_two"), score_threshold=scores[1])
    assert [r.score for r in strict] == [s for s in scores if s >= scores[1]]


def test_filters_apply_before_ranking(corpus: Store) -> None:
    assert len(find(corpus, "needs")) == 2
    recent = {"type": "gte", "key": "year", "value": 2023}
    assert [r.file_id for r in find(corpus, "needs", filters=recent, max_num_results=1)] == ["file_bake"]
    older = {
        "type": "and",
        "filters": [
            {"type": "eq", "key": "kind", "value": "manual"},
            {"type": "lt", "key": "year", "value": 2023},
        ],
    }
    assert [r.file_id for r in find(corpus, "needs tyres proof", filters=older)] == ["file_car"]
    assert find(corpus, "quokka", filters={"type": "eq", "key": "kind", "value": "recipe"}) == []


def test_a_malformed_filter_is_a_400(corpus: Store) -> None:
    with pytest.raises(InvalidRequest):
        find(corpus, "quokka", filters={"type": "eq", "key": "kind"})


@pytest.mark.parametrize("query", ["", "   ", '"', "NEAR(", "*", "the of and"])
def test_odd_queries_answer_without_error(corpus: Store, scripted_model: ScriptedModel, query: str) -> None:
    assert isinstance(find(corpus, query, embedder=embedder(scripted_model)), list)


def test_dense_finds_what_shares_no_word(corpus: Store, scripted_model: ScriptedModel) -> None:
    assert find(corpus, "automobile") == []  # full text alone: no such word
    results = find(corpus, "automobile", embedder=embedder(scripted_model))
    assert results[0].file_id == "file_car"
    assert results[0].score == pytest.approx(1.0)  # cosine alone
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert len(scripted_model.embedding_requests) == 1


def test_fused_top_of_both_scores_one(corpus: Store, scripted_model: ScriptedModel) -> None:
    results = find(corpus, "quokka marsupial", embedder=embedder(scripted_model))
    assert results[0].file_id == "file_roo" and results[0].score == pytest.approx(1.0)
    assert all(0 < r.score <= 1 for r in results)


def test_a_failing_embedder_falls_back_to_full_text(
    corpus: Store,
    scripted_model: ScriptedModel,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embeddings, "FIRST_BACKOFF_S", 0.0)
    scripted_model.script_embeddings(500)
    with caplog.at_level(logging.WARNING, logger="agentbox.retrieval.search"):
        results = find(corpus, "quokka", embedder=embedder(scripted_model))
    assert [r.file_id for r in results] == ["file_roo"]
    assert "full text alone" in caplog.text and "answered 500" in caplog.text
