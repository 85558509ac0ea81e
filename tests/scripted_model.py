"""The scripted model: a real HTTP server speaking OpenAI chat completions, replies scripted per test.

It is the one test double agentbox allows (a hosted model is a paid outside service). Each test
queues replies — a code tool call, plain text, or a function of the conversation so far — and
can read back every request the server received (`requests`: the bodies; `received`: with path,
query and headers). Providers' failures are scripted too: an HTTP error with its body and headers
(`Fail`), a stream cut mid-answer (`Cut`) or stalled there (`Hold`), a late answer (`Slow`), raw
chunks as some servers send them (`Chunks`) and garbage (`Raw`). A `gate` makes it answer only
requests shaped as a provider demands (Azure's paths, query and headers), refusing others as that
provider would.

It answers `/v1/embeddings` too, in OpenAI's shape, with the concept vectors of
tests/scripted_embeddings.py; `script_embeddings` queues failures (status codes or `Fail`/`Raw`)
to answer first, one per request, and `embedding_requests` holds what arrived there.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests import scripted_embeddings

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Code:
    """Reply with a call of agentbox's code tool."""

    code: str
    tool: str = "python"


@dataclass(frozen=True)
class Text:
    """Reply with a final answer."""

    text: str


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error, as a provider does when it is busy, broken or refuses the prompt."""

    status: int
    message: str = "scripted failure"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """Sent as is instead of OpenAI's {"error": {...}} (e.g. Ollama's {"error": "..."})."""


@dataclass(frozen=True)
class Cut:
    """Stream `text` in chunks, then close the connection: no finish_reason, no [DONE]."""

    text: str


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` before answering with `reply`."""

    seconds: float
    reply: Code | Text


@dataclass(frozen=True)
class Chunks:
    """Stream these chunk bodies exactly (what a real server sent), then [DONE] unless `done` is False."""

    chunks: list[dict[str, Any]]
    done: bool = True


@dataclass(frozen=True)
class Hold:
    """Stream `text` in chunks, then send nothing more until `release` is set, then close: a provider
    stalled mid-answer (or one still answering when a test kills agentbox)."""

    text: str
    release: threading.Event


@dataclass(frozen=True)
class Raw:
    """Answer 200 with this body exactly (garbage a broken server or proxy sends)."""

    body: str
    content_type: str = "text/event-stream"


Answer = Code | Text | Fail | Cut | Slow | Chunks | Hold | Raw
Reply = Answer | Callable[[Messages], Answer]


@dataclass(frozen=True)
class Received:
    """One request as it arrived: what a provider would check besides the body."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Names in lower case."""
    body: dict[str, Any]


Gate = Callable[[Received], "tuple[int, str] | None"]
"""Returns the status and message to refuse a request with, or None to answer it."""


def last_tool_output(messages: Messages) -> str:
    """The content of the newest tool result in a conversation (what the sandbox answered)."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            return str(message.get("content", ""))
    raise AssertionError("the conversation has no tool result yet")


class ScriptedModel:
    def __init__(self, gate: Gate | None = None) -> None:
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._gate = gate
        self.requests: list[dict[str, Any]] = []
        """The body of every request answered (gated-out ones are not)."""
        self.received: list[Received] = []
        """Every request, answered or refused, with its path, query and headers."""
        self._embedding_replies: deque[Fail | Raw] = deque()
        self.embedding_requests: list[Received] = []
        """Every request to /embeddings that was not refused (chat requests are not here)."""
        self.seconds_answering = 0.0
        """Time spent inside the model's handler, so benchmarks can subtract it."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedModel:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def script_embeddings(self, *answers: int | Fail | Raw) -> None:
        """Answers for the next /embeddings requests, before the vectors: a status code is a Fail."""
        with self._lock:
            self._embedding_replies.extend(
                Fail(a, f"failure {a} on purpose") if isinstance(a, int) else a for a in answers
            )

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.received.clear()
            self._embedding_replies.clear()
            self.embedding_requests.clear()
            self.seconds_answering = 0.0

    def _next_reply(self, body: dict[str, Any]) -> Answer:
        with self._lock:
            self.requests.append(body)
            reply = (
                self._replies.popleft() if self._replies else Text("(the scripted model has no reply left)")
            )
        return reply(body["messages"]) if callable(reply) else reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in separate writes; without this each answer waits 40 ms
            # for a delayed ACK, which benchmarks would count as agentbox's overhead.
            disable_nagle_algorithm = True

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                started = time.perf_counter()
                try:
                    self._answer()
                finally:
                    with model._lock:
                        model.seconds_answering += time.perf_counter() - started

            def _answer(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                url = urlsplit(self.path)
                received = Received(
                    url.path,
                    dict(parse_qsl(url.query)),
                    {name.lower(): value for name, value in self.headers.items()},
                    body,
                )
                with model._lock:
                    model.received.append(received)
                refusal = model._gate(received) if model._gate is not None else None
                embedding = url.path.endswith("/embeddings")
                if refusal is None and not (embedding or url.path.endswith("/chat/completions")):
                    refusal = (404, "not found")
                if refusal is not None:
                    error = {"message": refusal[1], "type": "invalid_request_error", "code": None}
                    self._send_json(refusal[0], {"error": error})
                    return
                if embedding:
                    self._embeddings(received)
                    return
                reply = model._next_reply(body)
                if isinstance(reply, Slow):
                    time.sleep(reply.seconds)
                    reply = reply.reply
                try:
                    if isinstance(reply, Fail):
                        self._fail(reply)
                    elif isinstance(reply, Raw):
                        self._raw(reply)
                    elif isinstance(reply, Cut | Chunks | Hold) or body.get("stream"):
                        self._stream(body, reply)
                    else:
                        self._send_json(200, _completion(body, reply))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def _embeddings(self, received: Received) -> None:
                with model._lock:
                    model.embedding_requests.append(received)
                    scripted = model._embedding_replies.popleft() if model._embedding_replies else None
                if isinstance(scripted, Fail):
                    self._fail(scripted)
                elif isinstance(scripted, Raw):
                    self._raw(scripted)
                else:
                    self._send_json(200, scripted_embeddings.embeddings(received.body))

            def _fail(self, reply: Fail) -> None:
                if reply.body is not None:
                    data = reply.body.encode()
                else:
                    error = {"message": reply.message, "type": "server_error", "code": reply.code}
                    data = json.dumps({"error": error}).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _raw(self, reply: Raw) -> None:
                data = reply.body.encode()
                self.send_response(200)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], reply: Code | Text | Cut | Chunks | Hold) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                if isinstance(reply, Cut | Hold):
                    # Content, then the connection closes: what a crashed or restarted server sends.
                    chunks, done = _chunks(body, Text(reply.text))[:-1], False
                elif isinstance(reply, Chunks):
                    chunks, done = reply.chunks, reply.done
                else:
                    chunks, done = _chunks(body, reply), True
                for chunk in chunks:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if isinstance(reply, Hold):
                    reply.release.wait(120)
                if done:
                    self.wfile.write(b"data: [DONE]\n\n")

        return Handler


_counter = iter(range(1, 1 << 30))


def _message(reply: Code | Text) -> tuple[dict[str, Any], str]:
    if isinstance(reply, Text):
        return {"role": "assistant", "content": reply.text}, "stop"
    call = {
        "id": f"call_scripted{next(_counter)}",
        "type": "function",
        "function": {"name": reply.tool, "arguments": json.dumps({"code": reply.code})},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _usage(body: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7}


def _completion(body: dict[str, Any], reply: Code | Text) -> dict[str, Any]:
    message, finish = _message(reply)
    return {
        "id": f"chatcmpl-{next(_counter)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(body),
    }


def _chunks(body: dict[str, Any], reply: Code | Text) -> list[dict[str, Any]]:
    message, finish = _message(reply)
    base = {
        "id": f"chatcmpl-{next(_counter)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
    }
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if isinstance(reply, Text):
        deltas += [{"content": reply.text[i : i + 8]} for i in range(0, len(reply.text), 8)]
    else:
        call = message["tool_calls"][0]
        arguments = call["function"]["arguments"]
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 16]}}]}
            for i in range(0, len(arguments), 16)
        ]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": _usage(body)}
    )
    return chunks
