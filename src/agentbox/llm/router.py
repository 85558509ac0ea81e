"""The app's ChatModel: each request goes to the provider the models file names for its model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

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
        config = self.catalog.resolve(request.model)
        client = self._clients[config.provider.name]

        def native(request: ChatRequest) -> AsyncIterator[ModelEvent]:
            return client.stream(request, config)

        events = native(request) if config.options.native_tools else stream_fenced(native, request)
        async with aclosing(closing_stream(events)) as closed:
            async for event in closed:
                yield event

    def capabilities(self, model: str) -> ModelCapabilities:
        options = self.catalog.resolve(model).options
        return ModelCapabilities(vision=options.vision, context_window=options.context_window)

    def resolve(self, model: str) -> ModelConfig:
        return self.catalog.resolve(model)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
