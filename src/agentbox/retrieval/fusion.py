"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): merge rankings by position alone.

An item's fused score is the sum over the rankings it appears in of 1 / (k + rank), rank from 1;
k = 60 damps the weight of the very top places. Scores of different scales (BM25, cosine) never mix.
"""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = 60) -> list[tuple[str, float]]:
    """Items of all rankings, best fused score first; ties keep the order items were first met."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:  # a ranking that repeats an item counts its best place only
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def best_possible(rankings: int, k: int = 60) -> float:
    """The fused score of an item ranked first everywhere: divide by it to bring scores into (0, 1]."""
    return rankings / (k + 1)
