"""A ChatModel over any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

from typing import Any

import openai

from agentbox.errors import ModelError
from agentbox.llm.base import ChatRequest, Completion, ToolCall

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

    async def complete(self, request: ChatRequest) -> Completion:
        if self._client is None:
            raise ModelError(NOT_CONFIGURED, code="server_error")
        options: dict[str, Any] = {}
        if request.tools:
            options["tools"] = request.tools
            if request.parallel_tool_calls is not None:
                options["parallel_tool_calls"] = request.parallel_tool_calls
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.max_tokens is not None:
            options["max_tokens"] = request.max_tokens
        try:
            response = await self._client.chat.completions.create(
                model=request.model,
                messages=request.messages,
                **options,  # type: ignore[arg-type]
            )
        except openai.APIStatusError as exc:
            code = "rate_limit_exceeded" if exc.status_code == 429 else "server_error"
            raise ModelError(
                f"The model endpoint answered {exc.status_code}: {exc.message}", code=code
            ) from exc
        except openai.APIError as exc:
            raise ModelError(f"The model endpoint failed: {exc}", code="server_error") from exc
        if not response.choices:
            raise ModelError("The model endpoint returned no choices.", code="server_error")
        choice = response.choices[0]
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
            for c in (choice.message.tool_calls or [])
            if c.type == "function"
        )
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            tool_calls=calls,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
