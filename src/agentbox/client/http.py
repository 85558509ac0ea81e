"""The HTTP client of a running server's exec API: the routes `agentbox exec` speaks.

Every failure to talk to the server — unreachable, a refused key, an unknown container, a stream
cut short — leaves this module as one `ServerError` whose message is a sentence for the user.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import httpx

# Cells may run up to an hour, in silence: the stream has no read deadline; everything else has.
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_STREAM_TIMEOUT = httpx.Timeout(None, connect=10.0)


class ServerError(Exception):
    """The server could not be asked, or said no; the message says which, in one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status when the server answered


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each server-sent event in these lines (the SSE framing, minus what we don't use).

    A few lines instead of a dependency: no SSE client library is installed, and the server's
    framing is one `event:` and one `data:` line per event, JSON that repeats the event name.
    Comment lines (keepalives) and other fields are skipped, as the SSE spec says.
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _refusal(response: httpx.Response) -> ServerError:
    """The server's error message (OpenAI shape), or the status line when the body has none."""
    try:
        error = response.json().get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    return ServerError(f"{response.status_code} {message or response.reason_phrase}", response.status_code)


class Client:
    """The few /v1 routes `agentbox exec` needs, on one connection pool. Usable as a context manager."""

    def __init__(self, url: str, api_key: str) -> None:
        """`url` is the server's root (`http://127.0.0.1:8000`), with or without `/v1`."""
        root = url.rstrip("/").removesuffix("/v1")
        self.url = root
        self._http = httpx.Client(
            base_url=root + "/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=_TIMEOUT,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_container(self, name: str) -> str:
        """A new container's id."""
        container_id: str = self._post("/containers", {"name": name})["id"]
        return container_id

    def interrupt(self, container_id: str) -> bool:
        """Interrupt the container's running cell; False when nothing was running."""
        return bool(self._post(f"/containers/{container_id}/interrupt", None).get("interrupted"))

    def exec_events(
        self, container_id: str, code: str, timeout_s: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Run one cell; yield its events (`exec.created`, `exec.output.delta`, `exec.image`,
        `exec.completed`) as they arrive. Ends after `exec.completed`; raises ServerError otherwise."""
        body: dict[str, Any] = {"code": code, "stream": True}
        if timeout_s is not None:
            body["timeout"] = timeout_s
        try:
            with self._http.stream(
                "POST", f"/containers/{container_id}/exec", json=body, timeout=_STREAM_TIMEOUT
            ) as response:
                if response.is_error:
                    response.read()
                    raise _refusal(response)
                for data in sse_data(response.iter_lines()):
                    event: dict[str, Any] = json.loads(data)
                    if event.get("type") == "error":  # the server failed after the stream began
                        message = (event.get("error") or {}).get("message") or "the server had an error"
                        raise ServerError(f"the cell could not run: {message}")
                    yield event
                    if event.get("type") == "exec.completed":
                        return
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        raise ServerError(f"the server at {self.url} ended the stream before the cell ended")

    def _post(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise _refusal(response)
        result: dict[str, Any] = response.json()
        return result

    def _unreachable(self, exc: httpx.TransportError) -> ServerError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ServerError(f"cannot reach the agentbox server at {self.url} ({reason}); is it running?")
        return ServerError(f"lost the connection to the agentbox server at {self.url} ({reason})")
