"""The file_search tool's markers: what the model reads, the citations found again in its answer, and
the queries taken from its call."""

from __future__ import annotations

import pytest

from agentbox.engine import citations, searching
from agentbox.retrieval.results import SearchResult


def result(n: int, filename: str = "notes.docx") -> SearchResult:
    return SearchResult(
        file_id=f"file-{n}",
        filename=filename,
        score=0.5,
        text=f" passage {n} ",
        chunk_id=f"c{n}",
        vector_store_id="vs",
    )


def test_format_results_puts_each_passage_under_its_marker() -> None:
    text, markers = citations.format_results(3, [result(1), result(2, "a】b.txt")])
    assert list(markers) == ["【3:0†notes.docx】", "【3:1†a]b.txt】"]
    assert "【3:0†notes.docx】\npassage 1" in text and "【3:1†a]b.txt】\npassage 2" in text
    assert "【3:0†notes.docx】" in text.splitlines()[0]  # the note names a marker to cite with


def test_nothing_found_says_so() -> None:
    text, markers = citations.format_results(0, [], ["pumps"])
    assert markers == {} and "nothing" in text and "pumps" in text


def test_find_matches_by_numbers_and_skips_unknown_markers() -> None:
    _, markers = citations.format_results(0, [result(1), result(2)])
    answer = "A 【0:1†source】 and B 【0:0†notes.docx】 but not 【7:0†x】."
    found = citations.find(answer, markers)
    assert [(c.marker, c.result.file_id) for c in found] == [
        ("【0:1†source】", "file-2"),
        ("【0:0†notes.docx】", "file-1"),
    ]
    assert all(answer[c.start : c.end] == c.marker for c in found)


def test_remove_gives_positions_in_the_cleaned_text() -> None:
    _, markers = citations.format_results(0, [result(1), result(2)])
    cleaned, placed = citations.remove("One【0:0†n】 two【0:1†n】. Odd 【9:9†x】", markers)
    assert cleaned == "One two. Odd 【9:9†x】"
    assert [(i, c.result.file_id) for i, c in placed] == [(3, "file-1"), (7, "file-2")]


@pytest.mark.parametrize(
    ("arguments", "queries"),
    [
        ('{"queries": ["a", " b ", "a", ""]}', ["a", "b"]),
        ('{"query": "pumps"}', ["pumps"]),
        ('{"queries": "pumps"}', ["pumps"]),
        ("raw words", ["raw words"]),
    ],
)
def test_queries_of_a_call(arguments: str, queries: list[str]) -> None:
    assert searching.queries_of(arguments) == queries


@pytest.mark.parametrize("arguments", ['{"queries": []}', '{"queries": [1]}', "{broken", ""])
def test_a_call_without_a_query_is_a_problem_for_the_model(arguments: str) -> None:
    problem = searching.queries_of(arguments)
    assert isinstance(problem, str) and problem.startswith("Error:") and "file_search" in problem
