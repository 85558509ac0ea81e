"""What a search is asked and what it finds: the values shared by the engine and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SearchRequest:
    vector_store_ids: list[str]
    query: str
    max_num_results: int = 10
    filters: dict[str, Any] | None = None
    """OpenAI's attribute filters: {"type": "eq", "key", "value"} or {"type": "and"|"or", "filters": […]}."""
    ranker: str = "auto"
    score_threshold: float = 0.0


@dataclass(frozen=True, slots=True)
class SearchResult:
    file_id: str
    filename: str
    score: float
    """In [0, 1], higher is better."""
    text: str
    chunk_id: str
    vector_store_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
