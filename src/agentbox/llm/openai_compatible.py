"""A ChatModel over any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

from agentbox.errors import ModelError
from agentbox.llm.base import ChatRequest, Completion, ModelEvent, TextDelta, ToolCall, ToolCallDelta

NOT_CONFIGURED = (
    "No model endpoint is configured. Set AGENTBOX_MODEL_BASE_URL (an OpenAI-compatible "
    "chat-completions URL such as https://api.openai.com/v1 or http://localhost:11434/v1) and "
    "AGENTBOX_MODEL_API_KEY, then restart agentbox."
)


class OpenAICompatibleModel:
    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        self._client: openai.AsyncOpenAI | None = None
        if base_url:
            # The SDK would otherwise retry a failing endpoint behind the run's back; the run reports it.
            self._client = openai.AsyncOpenAI(
                base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=1
            )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        if self._client is None:
            raise ModelError(NOT_CONFIGURED, code="server_error")
        try:
            # client.post, not chat.completions.create: create() first walks the whole conversation
            # through the SDK's TypedDict transform, which took most of a run's time on long threads.
            # Our messages are plain JSON already; the SDK still does transport, retries and errors.
            body = {
                "model": request.model,
                "messages": request.messages,
                "stream": True,
                "stream_options": {"include_usage": True},
                **_options(request),
            }
            chunks = await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletionChunk,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            text: list[str] = []
            calls: dict[int, dict[str, str]] = {}
            prompt_tokens = completion_tokens = 0
            finish: str | None = None
            async for chunk in chunks:
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    finish = choice.finish_reason or finish
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        yield TextDelta(choice.delta.content)
                    for piece in choice.delta.tool_calls or []:
                        call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                        name = piece.function.name if piece.function else None
                        arguments = (piece.function.arguments if piece.function else None) or ""
                        call["id"] = call["id"] or (piece.id or "")
                        call["name"] = call["name"] or (name or "")
                        call["arguments"] += arguments
                        yield ToolCallDelta(piece.index, piece.id, name, arguments)
        except openai.APIStatusError as exc:
            code = "rate_limit_exceeded" if exc.status_code == 429 else "server_error"
            raise ModelError(
                f"The model endpoint answered {exc.status_code}: {exc.message}", code=code
            ) from exc
        except openai.APIError as exc:
            raise ModelError(f"The model endpoint failed: {exc}", code="server_error") from exc
        yield Completion(
            text="".join(text),
            tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def _options(request: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.tools:
        options["tools"] = request.tools
        if request.tool_choice is not None:
            options["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            options["parallel_tool_calls"] = request.parallel_tool_calls
    for name in ("temperature", "top_p", "max_tokens", "response_format"):
        if (value := getattr(request, name)) is not None:
            options[name] = value
    return options
