"""The embeddings client against a real OpenAI-shaped endpoint on loopback (the scripted model's
/v1/embeddings): batches, order, retries, clear failures."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from agentbox.errors import ModelError
from agentbox.retrieval import embeddings
from agentbox.retrieval.embeddings import Embedder
from tests.scripted_embeddings import vector
from tests.scripted_model import Raw, ScriptedModel


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


def test_batches_in_order_with_the_key(scripted_model: ScriptedModel) -> None:
    embedder = Embedder(scripted_model.base_url + "/", "nomic", "sk-1", batch_size=2)
    texts = ["car", "sourdough loaf", "quokka", "automobile", "plain"]
    assert embed(embedder, texts) == [vector(t) for t in texts]
    assert len(scripted_model.embedding_requests) == 3
    first = scripted_model.embedding_requests[0]
    assert first.path == "/v1/embeddings"
    assert first.headers["authorization"] == "Bearer sk-1"
    assert first.body == {"model": "nomic", "input": ["car", "sourdough loaf"], "encoding_format": "float"}
    assert scripted_model.requests == []  # no chat completion was asked for


def test_no_key_no_header_and_nothing_to_embed(scripted_model: ScriptedModel) -> None:
    assert embed(Embedder(scripted_model.base_url, "m"), ["x"])
    assert "authorization" not in scripted_model.embedding_requests[0].headers
    assert embed(Embedder(scripted_model.base_url, "m"), []) == []
    assert len(scripted_model.embedding_requests) == 1


def test_busy_and_broken_answers_are_retried(scripted_model: ScriptedModel) -> None:
    scripted_model.script_embeddings(503, 429)
    assert embed(Embedder(scripted_model.base_url, "m", max_retries=2), ["car"]) == [vector("car")]
    assert len(scripted_model.embedding_requests) == 3


@pytest.mark.parametrize(
    ("fail", "retries", "says", "code"),
    [
        ([400], 2, "answered 400: failure 400 on purpose", "server_error"),
        ([500, 500], 1, "answered 500: failure 500 on purpose", "server_error"),
        ([429], 0, "answered 429", "rate_limit_exceeded"),
    ],
)
def test_failures_say_what_the_endpoint_said(
    scripted_model: ScriptedModel, fail: list[int], retries: int, says: str, code: str
) -> None:
    scripted_model.script_embeddings(*fail)
    with pytest.raises(ModelError) as caught:
        embed(Embedder(scripted_model.base_url, "m", max_retries=retries), ["x"])
    assert says in caught.value.message and f"{scripted_model.base_url}/embeddings" in caught.value.message
    assert caught.value.code == code
    assert len(scripted_model.embedding_requests) == len(fail)


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
def test_answers_that_are_not_one_vector_per_input(scripted_model: ScriptedModel, answer: object) -> None:
    scripted_model.script_embeddings(Raw(json.dumps(answer), "application/json"))
    with pytest.raises(ModelError, match=r"not a list of embeddings|embeddings for 1 inputs"):
        embed(Embedder(scripted_model.base_url, "m"), ["x"])


def test_garbage_that_is_not_json(scripted_model: ScriptedModel) -> None:
    scripted_model.script_embeddings(Raw("<html>502 bad gateway</html>", "text/html"))
    with pytest.raises(ModelError, match="not a list of embeddings: <html>502"):
        embed(Embedder(scripted_model.base_url, "m"), ["x"])


def test_unreachable_endpoint() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelError, match="cannot be reached"):
        embed(Embedder(f"http://127.0.0.1:{port}/v1", "m", max_retries=1), ["x"])
