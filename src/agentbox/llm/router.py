"""The app's ChatModel: each request goes to the provider the models file names for its model."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx

from agentbox import metrics
from agentbox.errors import ContextTooLong, ModelError
from agentbox.llm.base import ChatRequest, ModelCapabilities, ModelEvent, closing_stream
from agentbox.llm.catalog import Catalog, ModelConfig
from agentbox.llm.fenced import stream_fenced
from agentbox.llm.openai_compatible import ProviderClient


class ModelRouter:
    def __init__(self, catalog: Catalog, default_timeout_s: float) -> None:
        self.catalog = catalog
        # One HTTP client per provider, so each keeps its own connections and token.
        self._clients = {p.name: ProviderClient(p, default_timeout_s) for p in catalog.providers}

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        try:
            config = self.catalog.resolve(request.model)
        except ModelError:
            metrics.MODEL_ERRORS.labels("", "unconfigured").inc()
            raise
        client = self._clients[config.provider.name]

        def native(request: ChatRequest) -> AsyncIterator[ModelEvent]:
            return client.stream(request, config)

        events = native(request) if config.options.native_tools else stream_fenced(native, request)
        provider = config.provider.name
        started = time.monotonic()
        first = True
        try:
            async with aclosing(closing_stream(events)) as closed:
                async for event in closed:
                    if first:
                        metrics.MODEL_FIRST_TOKEN_SECONDS.labels(provider).observe(time.monotonic() - started)
                        first = False
                    yield event
        except ModelError as exc:
            metrics.MODEL_ERRORS.labels(provider, error_kind(exc)).inc()
            metrics.MODEL_CALL_SECONDS.labels(provider, "error").observe(time.monotonic() - started)
            raise
        metrics.MODEL_CALL_SECONDS.labels(provider, "ok").observe(time.monotonic() - started)

    def capabilities(self, model: str) -> ModelCapabilities:
        options = self.catalog.resolve(model).options
        return ModelCapabilities(vision=options.vision, context_window=options.context_window)

    def resolve(self, model: str) -> ModelConfig:
        return self.catalog.resolve(model)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def error_kind(exc: ModelError) -> str:
    """The agentbox_model_errors_total kind of a failed turn, from the exception and its causes."""
    if isinstance(exc, ContextTooLong):
        return "context_too_long"
    if exc.code == "rate_limit_exceeded":
        return "rate_limited"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, httpx.TimeoutException):
            return "timeout"
        if isinstance(cause, httpx.TransportError):
            return "connection"
        cause = cause.__cause__
    return "provider_error"
