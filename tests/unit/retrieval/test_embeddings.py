"""The embeddings client against an OpenAI-shaped endpoint: batches, order, retries, clear failures."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from agentbox.errors import ModelError
from agentbox.retrieval import embeddings
from agentbox.retrieval.embeddings import Embedder
from tests.unit.retrieval.embedding_server import EmbeddingServer, vector


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "FIRST_BACKOFF_S", 0.0)


def embed(embedder: Embedder, texts: list[str]) -> list[list[float]]:
    async def go() -> list[list[float]]:
        try:
            return await embedder.embed(texts)
        finally:
            await embedder.aclose()

    return asyncio.run(go())


def test_batches_in_order_with_the_key() -> None:
    server = EmbeddingServer()
    embedder = Embedder("http://emb.test/v1/", "nomic", "sk-1", batch_size=2, transport=server.transport())
    texts = ["car", "sourdough loaf", "quokka", "automobile", "plain"]
    assert embed(embedder, texts) == [vector(t) for t in texts]
    assert len(server.requests) == 3
    first = server.requests[0]
    assert str(first.url) == "http://emb.test/v1/embeddings"
    assert first.headers["authorization"] == "Bearer sk-1"
    assert json.loads(first.content) == {
        "model": "nomic",
        "input": ["car", "sourdough loaf"],
        "encoding_format": "float",
    }


def test_no_key_no_header_and_nothing_to_embed() -> None:
    server = EmbeddingServer()
    assert embed(Embedder("http://e.test/v1", "m", transport=server.transport()), ["x"])
    assert "authorization" not in server.requests[0].headers
    assert embed(Embedder("http://e.test/v1", "m", transport=server.transport()), []) == []
    assert len(server.requests) == 1


def test_busy_and_broken_answers_are_retried() -> None:
    server = EmbeddingServer()
    server.fail = [503, 429]
    assert embed(Embedder("http://e.test/v1", "m", max_retries=2, transport=server.transport()), ["car"])
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("fail", "retries", "says", "code"),
    [
        ([400], 2, "answered 400: failure 400 on purpose", "server_error"),
        ([500, 500], 1, "answered 500: failure 500 on purpose", "server_error"),
        ([429], 0, "answered 429", "rate_limit_exceeded"),
    ],
)
def test_failures_say_what_the_endpoint_said(fail: list[int], retries: int, says: str, code: str) -> None:
    server = EmbeddingServer()
    server.fail = list(fail)
    with pytest.raises(ModelError) as caught:
        embed(Embedder("http://e.test/v1", "m", max_retries=retries, transport=server.transport()), ["x"])
    assert says in caught.value.message and "http://e.test/v1/embeddings" in caught.value.message
    assert caught.value.code == code
    assert len(server.requests) == len(fail)


@pytest.mark.parametrize(
    "answer",
    [
        {"data": []},
        {"data": [{"index": 0, "embedding": []}]},
        {"data": [{"index": 0, "embedding": "AAAA"}]},
        {"object": "list"},
        ["not", "an", "object"],
    ],
)
def test_answers_that_are_not_one_vector_per_input(answer: object) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    with pytest.raises(ModelError, match="embeddings"):
        embed(Embedder("http://e.test/v1", "m", transport=transport), ["x"])


def test_unreachable_endpoint() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ModelError, match="cannot be reached: connection refused"):
        embed(Embedder("http://e.test/v1", "m", max_retries=1, transport=httpx.MockTransport(refuse)), ["x"])
