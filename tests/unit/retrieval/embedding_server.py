"""A stand-in for an external /v1/embeddings endpoint, served through httpx.MockTransport.

Vectors count a few concept families, so synonyms that share no word still land close together
(what a real embedding model gives and full text cannot)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import httpx

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


class EmbeddingServer:
    """Answers like OpenAI; `fail` lists status codes to answer first, one per request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail: list[int] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            status = self.fail.pop(0)
            return httpx.Response(status, json={"error": {"message": f"failure {status} on purpose"}})
        body: dict[str, Any] = json.loads(request.content)
        data = [
            {"object": "embedding", "index": i, "embedding": vector(text)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # order by `index`, not by position
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"]})
