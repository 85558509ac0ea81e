"""A client for any OpenAI-compatible /v1/embeddings endpoint (OpenAI, Azure /openai/v1, vLLM,
Ollama, llama.cpp), which file_search uses for its dense ranking next to full text.

Inputs go in batches of `batch_size`; a 429, a 5xx or a lost connection is retried up to
`max_retries` times (0.5 s doubling); any other failure, or an answer that is not one vector per
input, raises ModelError with what the endpoint said.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx

from agentbox.errors import ModelError

FIRST_BACKOFF_S = 0.5


class Embedder:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout_s: float = 60.0,
        batch_size: int = 64,
        max_retries: int = 2,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.batch_size = batch_size
        self.max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._batch(list(texts[start : start + self.batch_size])))
        return vectors

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = await self._http.post(self.url, json=body)
            except httpx.TimeoutException as error:
                raise ModelError(
                    f"The embeddings endpoint {self.url} did not answer in time.", code="server_error"
                ) from error
            except httpx.TransportError as error:
                if last:
                    raise ModelError(
                        f"The embeddings endpoint {self.url} cannot be reached: {error}",
                        code="server_error",
                    ) from error
            else:
                if response.status_code < 400:
                    return _vectors(self.url, response, len(texts))
                if last or not (response.status_code == 429 or response.status_code >= 500):
                    raise ModelError(
                        f"The embeddings endpoint {self.url} answered {response.status_code}: "
                        f"{_said(response)}",
                        code="rate_limit_exceeded" if response.status_code == 429 else "server_error",
                    )
            await asyncio.sleep(FIRST_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _said(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300] or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    return json.dumps(body)[:300]


def _vectors(url: str, response: httpx.Response, count: int) -> list[list[float]]:
    try:
        data = response.json()["data"]
        items = sorted(data, key=lambda item: item.get("index", 0))
        vectors = [[float(x) for x in item["embedding"]] for item in items]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ModelError(
            f"The embeddings endpoint {url} sent an answer that is not a list of embeddings: "
            f"{response.text[:200]}",
            code="server_error",
        ) from None
    if len(vectors) != count or any(not v for v in vectors):
        raise ModelError(
            f"The embeddings endpoint {url} sent {len(vectors)} embeddings for {count} inputs.",
            code="server_error",
        )
    return vectors
