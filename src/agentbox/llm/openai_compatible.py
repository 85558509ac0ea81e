"""One provider's chat-completions client: OpenAI-compatible servers (OpenAI, vLLM, Ollama, llama.cpp)
and Azure OpenAI (classic deployment URLs or /openai/v1; an api-key or an Entra token).

Plain httpx, not the openai SDK: the SDK's retries and typed chunks would hide exactly what this
module must see (Retry-After, error bodies, chunks that break OpenAI's schema, a stream cut short).

Failures, in the order they are met:
- 429 and 5xx answers and connection failures are retried while nothing has been yielded yet, up
  to max_retries times, waiting 0.5 s doubling to at most 8 s, or what Retry-After asks; a
  Retry-After past 60 s fails at once. Then: ModelError rate_limit_exceeded (429) or server_error.
- A 400 saying the prompt is longer than the model's context: ContextTooLong (not retried here;
  the engine truncates and tries once more).
- No byte for timeout_s: ModelError server_error, not retried (a hung server would hang each try).
- A stream that stops after content without a finish_reason or [DONE]: ModelError server_error.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from agentbox.errors import ContextTooLong, ModelError
from agentbox.llm.base import ChatRequest, Completion, ModelEvent
from agentbox.llm.catalog import ModelConfig, Provider
from agentbox.llm.chunks import ChunkReader, prompt_chars

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"

# The providers' ways of saying "the prompt does not fit": OpenAI and vLLM ("maximum context
# length is"), llama.cpp ("exceeds the available context size", "exceed context window"), Ollama
# ("input length exceeds the context length"), Anthropic-style gateways ("prompt is too long").
_TOO_LONG = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|prompt is too long|input is too long"
    r"|too many (input |prompt )?tokens",
    re.IGNORECASE,
)


class _Retry(Exception):
    """A failure worth another try: the error to raise if none is left, and the wait Retry-After asked."""

    def __init__(self, error: ModelError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class ProviderClient:
    def __init__(self, provider: Provider, default_timeout_s: float) -> None:
        self.provider = provider
        self._default_timeout_s = default_timeout_s
        # The openai SDK's pool limits: many runs stream at once from one provider.
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        )
        self._entra = _EntraToken(provider.name) if provider.auth == "entra" else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream(self, request: ChatRequest, config: ModelConfig) -> AsyncIterator[ModelEvent]:
        """One model turn; retries only while nothing has been yielded."""
        timeout_s = config.options.timeout_s or self._default_timeout_s
        tries = config.options.max_retries + 1
        for attempt in range(tries):
            try:
                async for event in self._attempt(request, config, timeout_s):
                    yield event
                return
            except _Retry as retry:  # raised only before the first event, so a retry repeats nothing
                wait = retry.retry_after
                if wait is not None and wait > MAX_RETRY_AFTER_S:
                    raise ModelError(
                        f"{retry.error.message} It asked to be retried after {wait:g} s, longer than "
                        f"agentbox waits ({MAX_RETRY_AFTER_S:g} s).",
                        code=retry.error.code,
                    ) from retry
                if attempt == tries - 1:
                    after = f" (after {tries} tries)" if tries > 1 else ""
                    raise ModelError(retry.error.message + after, code=retry.error.code) from retry
                await asyncio.sleep(wait if wait is not None else _backoff(attempt))

    async def _attempt(
        self, request: ChatRequest, config: ModelConfig, timeout_s: float
    ) -> AsyncIterator[ModelEvent]:
        url, params = self._url(config)
        reader = ChunkReader(prompt_chars(request.messages))
        started = done = False
        stray: list[str] = []  # lines of the body that are not server-sent events, to name garbage
        try:
            async with self._http.stream(
                "POST",
                url,
                params=params,
                json=request_body(request, config),
                headers=await self._headers(),
                timeout=timeout_s,
            ) as response:
                if response.status_code >= 400:
                    raise self._status_error(response, await response.aread())
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    # A server that ignored "stream": true and answered the whole turn as JSON.
                    for event in self._whole(reader, await response.aread()):
                        yield event
                    return
                async for data in _sse_data(response, stray):
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = _json(data)
                    if chunk is None:
                        if not data.strip():
                            continue  # an empty event: a keep-alive
                        # Never skipped: a chunk dropped from the middle would store a wrong answer.
                        garbage = ModelError(
                            f"The model provider '{self.provider.name}' sent a stream chunk that is not "
                            f"a JSON object: {data[:300]}",
                            code="server_error",
                        )
                        raise garbage if started else _Retry(garbage)
                    if "error" in chunk:
                        raise self._stream_error(chunk, started)
                    if not isinstance(chunk.get("choices"), list) and len(stray) < 5:
                        stray.append(data[:100])  # JSON, but no chat chunk: named if nothing else comes
                    for event in reader.feed(chunk):
                        started = True
                        yield event
        except httpx.TimeoutException as exc:
            if started:
                raise self._cut(reader, f"nothing more came for {timeout_s:g} s") from exc
            raise ModelError(
                f"The model endpoint did not answer within {timeout_s:g} s "
                f"(provider '{self.provider.name}', model '{config.upstream}').",
                code="server_error",
            ) from exc
        except httpx.TransportError as exc:
            if started:
                raise self._cut(reader, f"the connection broke ({_describe(exc)})") from exc
            raise _Retry(
                ModelError(
                    f"The model provider '{self.provider.name}' could not be reached at {url}: "
                    f"{_describe(exc)}",
                    code="server_error",
                )
            ) from exc
        if reader.finish_reason is None and (not done or not (started or reader.call_count)):
            if not started:
                sent = f" It sent: {' '.join(stray)[:300]}" if stray else ""
                raise _Retry(
                    ModelError(
                        f"The model provider '{self.provider.name}' ended its stream without answering."
                        + sent,
                        code="server_error",
                    )
                )
            raise self._cut(reader, "the stream ended without a finish_reason")
        yield reader.completion()

    def _whole(self, reader: ChunkReader, raw: bytes) -> list[ModelEvent]:
        answer = _json(raw.decode(errors="replace"))
        if answer is not None and "error" in answer:
            raise self._stream_error(answer, False)
        if answer is None or not isinstance(answer.get("choices"), list):
            raise ModelError(
                f"The model provider '{self.provider.name}' answered something that is not a chat "
                f"completion: {raw[:300].decode(errors='replace')}",
                code="server_error",
            )
        events = reader.feed(answer)
        reader.finish_reason = reader.finish_reason or "stop"
        completion: Completion = reader.completion()
        return [*events, completion]

    def _url(self, config: ModelConfig) -> tuple[str, dict[str, str]]:
        provider = self.provider
        params = {"api-version": provider.api_version} if provider.api_version else {}
        if provider.azure_deployments:
            deployment = quote(config.upstream, safe="")
            return f"{provider.base_url}/openai/deployments/{deployment}/chat/completions", params
        return f"{provider.base_url}/chat/completions", params

    async def _headers(self) -> dict[str, str]:
        if self._entra is not None:
            return {"authorization": f"Bearer {await self._entra.token()}"}
        if self.provider.kind == "azure":
            return {"api-key": self.provider.api_key}
        return {"authorization": f"Bearer {self.provider.api_key}"} if self.provider.api_key else {}

    def _status_error(self, response: httpx.Response, raw: bytes) -> Exception:
        status = response.status_code
        message, code = _provider_error(raw)
        answered = f"The model provider '{self.provider.name}' answered {status}"
        if response.reason_phrase:
            answered += f" {response.reason_phrase}"
        full = f"{answered}: {message}" if message else f"{answered}."
        if status in (400, 413) and (code == "context_length_exceeded" or _TOO_LONG.search(message)):
            return ContextTooLong(full, code="context_length_exceeded")
        if status == 429:
            return _Retry(ModelError(full, code="rate_limit_exceeded"), _retry_after(response.headers))
        if status >= 500:
            return _Retry(ModelError(full, code="server_error"), _retry_after(response.headers))
        return ModelError(full, code="server_error")

    def _stream_error(self, chunk: dict[str, Any], started: bool) -> ModelError:
        """An error sent as a chunk of a 200 stream (llama.cpp and vLLM do this)."""
        message, code = _provider_error(json.dumps(chunk).encode())
        full = f"The model provider '{self.provider.name}' sent an error in its stream: {message}"
        if not started and (code == "context_length_exceeded" or _TOO_LONG.search(message)):
            return ContextTooLong(full, code="context_length_exceeded")
        return ModelError(full, code="server_error")

    def _cut(self, reader: ChunkReader, how: str) -> ModelError:
        return ModelError(
            f"The model's answer was cut off: {how} after {reader.output_chars} characters of text "
            f"and {reader.call_count} tool call(s) from provider '{self.provider.name}'.",
            code="server_error",
        )


def request_body(request: ChatRequest, config: ModelConfig) -> dict[str, Any]:
    """The chat-completions body, shaped by what the model's config says it takes."""
    options = config.options
    body: dict[str, Any] = {
        "model": config.upstream,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = request.tools
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if options.temperature:
        for name in ("temperature", "top_p"):
            if (value := getattr(request, name)) is not None:
                body[name] = value
    if request.max_tokens is not None:
        body["max_completion_tokens" if options.reasoning else "max_tokens"] = request.max_tokens
    if options.reasoning and (effort := request.reasoning_effort or options.reasoning_effort):
        body["reasoning_effort"] = effort
    if request.response_format is not None:
        body["response_format"] = request.response_format
    return body


async def _sse_data(response: httpx.Response, stray: list[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (data lines of one event joined by newlines); the first few
    lines that are no part of an event go to `stray`."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        elif not line.startswith((":", "event:", "id:", "retry:")) and len(stray) < 5:
            stray.append(line.strip())
    if lines:
        yield "\n".join(lines)


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _provider_error(raw: bytes) -> tuple[str, str | None]:
    """The provider's own message and code from an error body (OpenAI's shape, Ollama's, or text)."""
    text = raw.decode(errors="replace").strip()
    body = _json(text)
    if body is None:
        return text[:500], None
    error = body.get("error", body)
    if isinstance(error, str):  # Ollama: {"error": "..."}
        return error[:500], None
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)
        code = error.get("code") or error.get("type")
        return str(message)[:500], str(code) if code is not None else None
    return text[:500], None


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the provider asked to wait: retry-after-ms (OpenAI), Retry-After in seconds or a date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _backoff(attempt: int) -> float:
    return float(min(FIRST_BACKOFF_S * 2**attempt, MAX_BACKOFF_S))


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


class _EntraToken:
    """A Microsoft Entra token for Azure OpenAI from DefaultAzureCredential, renewed 5 minutes early.

    The synchronous credential runs in a thread: azure-identity's async one needs aiohttp, which
    agentbox does not otherwise need, and a token is fetched about once an hour.
    """

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._credential: Any = None
        self._token: Any = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or float(self._token.expires_on) - 300 < time.time():
                self._token = await asyncio.to_thread(self._fetch)
            return str(self._token.token)

    def _fetch(self) -> Any:
        try:
            from azure.core.exceptions import AzureError
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise ModelError(
                f"Provider '{self._provider}' has auth = \"entra\", which needs the azure-identity "
                "package: pip install 'agentbox[azure]'.",
                code="server_error",
            ) from exc
        try:
            if self._credential is None:
                self._credential = DefaultAzureCredential()
            return self._credential.get_token(ENTRA_SCOPE)
        except AzureError as exc:
            raise ModelError(
                f"No Entra token for provider '{self._provider}' (DefaultAzureCredential): {exc}",
                code="server_error",
            ) from exc
