"""Starts the real `agentbox serve` on a free loopback port and waits for its readiness line."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import openai
import sqlalchemy

from agentbox.devtools import READY
from tests.sandbox_fixtures import IN_EMULATED_VM, SERVER_UID_BASE, SMALL_LIMITS, worker_uid

REPO = Path(__file__).resolve().parent.parent
AGENTBOX = Path(sys.executable).parent / "agentbox"
START_TIMEOUT_S = 600.0 if IN_EMULATED_VM else 90.0
"""Start-up imports the server and preloads the forkserver's libraries: about 3 s here, and more than
90 s in the emulated cgroup v2 VM on a slow machine (CI saw it print ready just after 90 s)."""


class LiveServer:
    def __init__(self, data_dir: Path, api_key: str, *, args: Sequence[str] = (), **env: str) -> None:
        """`args` go after `agentbox serve --host 127.0.0.1 --port 0`; `env` adds AGENTBOX_* settings."""
        self.data_dir = data_dir
        self.api_key = api_key
        self._args = list(args)
        self._env = env
        self._process: ServerProcess | None = None
        self.url = ""
        self.output: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def sdk(self) -> openai.OpenAI:
        """The real openai SDK on this server with its key; no retries, so every error shows."""
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0)

    def http(self, timeout_s: float = 30) -> httpx.Client:
        """Plain HTTP to /v1 with the key, for what an SDK would not send."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def write_database(self, sql: str, **params: Any) -> None:
        """Change the server's database behind its back (a day passing, say), SQLite or PostgreSQL."""
        url = self._env.get("AGENTBOX_DATABASE_URL") or f"sqlite:///{self.data_dir / 'agentbox.sqlite3'}"
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(sql), params)
        finally:
            engine.dispose()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def tls_cert(self) -> Path:
        """Where `--tls-self-signed` keeps its certificate (the CA bundle clients must trust)."""
        return self.data_dir / "tls" / "cert.pem"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (for httpx)."""
        return ssl.create_default_context(cafile=self.tls_cert)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LiveServer:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "AGENTBOX_DATA_DIR": str(self.data_dir),
            "AGENTBOX_API_KEYS": self.api_key,
            "AGENTBOX_SANDBOX_RUNTIME": str(REPO / ".runtime"),
            "AGENTBOX_SANDBOX_UID_BASE": str(worker_uid(SERVER_UID_BASE)),
            # The fork server's preload takes minutes in the emulated VM beside the host suite.
            "AGENTBOX_SANDBOX_START_TIMEOUT_S": f"{SMALL_LIMITS['start_timeout_s']:g}",
            **self._env,
        }
        self.url = ""
        self._process = ServerProcess(
            [str(AGENTBOX), "serve", "--host", "127.0.0.1", "--port", "0", *self._args],
            READY,
            self.output,
            cwd=self.data_dir.parent,
            env=env,
        )
        if ready := self._process.wait_ready(timeout_s):
            self.url = ready.group(1)
            return self
        self.stop()
        raise RuntimeError("agentbox did not become ready:\n" + "".join(self.output))

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer ends it: no shutdown code runs."""
        if self._process is not None:
            self._process.kill()
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


class ServerProcess:
    """A server process a test starts, its output collected into `output` by a thread for its whole
    life: a pipe nobody drains fills up and blocks the server's logging, and a buffered reader beside
    select() can hide lines. The first line matching `ready` is its readiness line."""

    def __init__(self, argv: Sequence[str], ready: re.Pattern[str], output: list[str], **popen: Any) -> None:
        self.output = output
        self._ready = ready
        self._match: re.Match[str] | None = None
        self._settled = threading.Event()
        self._process = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        assert self._process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self, timeout_s: float) -> re.Match[str] | None:
        """The readiness line's match; None when the output ended or timeout_s passed without it."""
        self._settled.wait(timeout_s)
        return self._match

    def _read(self, stream: IO[str]) -> None:
        """Collect every line; settle on the readiness line or at end of output."""
        for line in stream:
            self.output.append(line)
            if self._match is None and (match := self._ready.search(line)):
                self._match = match
                self._settled.set()
        self._settled.set()

    def kill(self) -> None:
        self._process.kill()
        self._reaped()

    def stop(self) -> None:
        """Terminate (killed if it takes 20 s)."""
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reaped()

    def _reaped(self) -> None:
        self._process.wait()
        self._reader.join(timeout=20)
        if self._process.stdout is not None:
            self._process.stdout.close()
