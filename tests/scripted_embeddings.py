"""The scripted model's /v1/embeddings answers: vectors that count a few concept families.

Synonyms that share no word still land close together (what a real embedding model gives and
full text cannot), and every vector is known in advance, so tests can compare with `vector()`.
"""

from __future__ import annotations

import math
import re
from typing import Any

CONCEPTS = [
    {"car", "cars", "automobile", "automobiles", "vehicle", "sedan"},
    {"kangaroo", "marsupial", "marsupials", "quokka", "wallaby"},
    {"bread", "baking", "sourdough", "loaf", "bakery"},
]


def vector(text: str) -> list[float]:
    words = re.findall(r"\w+", text.lower())
    counts = [sum(w in family for w in words) for family in CONCEPTS] + [0.1]
    norm = math.sqrt(sum(c * c for c in counts))
    return [c / norm for c in counts]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's answer to an embeddings request (input: one string or a list of strings)."""
    texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
    data = [{"object": "embedding", "index": i, "embedding": vector(text)} for i, text in enumerate(texts)]
    data.reverse()  # clients must order by `index`, not by position
    tokens = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "scripted"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
