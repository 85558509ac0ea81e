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
from typing import IO

REPO = Path(__file__).resolve().parent.parent
AGENTBOX = Path(sys.executable).parent / "agentbox"
READY = re.compile(r"agentbox ready at (https?://\S+)/v1")


class LiveServer:
    def __init__(self, data_dir: Path, api_key: str, *, args: Sequence[str] = (), **env: str) -> None:
        """`args` go after `agentbox serve --host 127.0.0.1 --port 0`; `env` adds AGENTBOX_* settings."""
        self.data_dir = data_dir
        self.api_key = api_key
        self._args = list(args)
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.url = ""
        self.output: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

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

    def start(self, timeout_s: float = 90) -> LiveServer:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "AGENTBOX_DATA_DIR": str(self.data_dir),
            "AGENTBOX_API_KEYS": self.api_key,
            "AGENTBOX_SANDBOX_RUNTIME": str(REPO / ".runtime"),
            **self._env,
        }
        self.url = ""
        self._process = subprocess.Popen(
            [str(AGENTBOX), "serve", "--host", "127.0.0.1", "--port", "0", *self._args],
            cwd=self.data_dir.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        # A thread reads the output for the server's whole life: a pipe nobody drains fills up
        # and blocks the server's logging, and a buffered reader beside select() can hide lines.
        settled = threading.Event()
        self._reader = threading.Thread(
            target=self._read_output, args=(self._process.stdout, settled), daemon=True
        )
        self._reader.start()
        if settled.wait(timeout_s) and self.url:
            return self
        self.stop()
        raise RuntimeError("agentbox did not become ready:\n" + "".join(self.output))

    def _read_output(self, stream: IO[str], settled: threading.Event) -> None:
        """Collect every line; settle on the readiness line or at end of output."""
        for line in stream:
            self.output.append(line)
            if not settled.is_set() and (match := READY.search(line)):
                self.url = match.group(1)
                settled.set()
        settled.set()

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer ends it: no shutdown code runs."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=20)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = self._reader = None

    def stop(self) -> None:
        if self._process is None:
            return
        stop_process(self._process, self._reader)
        self._process = self._reader = None


def stop_process(process: subprocess.Popen[str], reader: threading.Thread | None) -> None:
    """Terminate a server started by a test (killed if it takes 20 s), then its output reader."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if reader is not None:
        reader.join(timeout=20)
    if process.stdout is not None:
        process.stdout.close()
