"""Reciprocal rank fusion by its definition."""

from __future__ import annotations

import pytest

from agentbox.retrieval.fusion import best_possible, reciprocal_rank_fusion


def test_scores_are_sums_of_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)


def test_agreement_wins_and_order_is_best_first() -> None:
    fused = reciprocal_rank_fusion([["x", "both", "y"], ["z", "both", "w"]])
    assert [item for item, _ in fused] == ["both", "x", "z", "y", "w"]


def test_ties_keep_first_seen_order_and_repeats_count_once() -> None:
    assert [i for i, _ in reciprocal_rank_fusion([["p", "q"], ["q", "p"]])] == ["p", "q"]
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)


def test_empty_and_normalised() -> None:
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []
    top = reciprocal_rank_fusion([["a"], ["a"], ["a"]], k=10)[0][1]
    assert top == pytest.approx(best_possible(3, k=10))
