"""Starts the real `agentbox serve` on a free loopback port and waits for its readiness line."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENTBOX = Path(sys.executable).parent / "agentbox"
READY = re.compile(r"agentbox ready at (http://\S+)/v1")


class LiveServer:
    def __init__(self, data_dir: Path, api_key: str, **env: str) -> None:
        self.data_dir = data_dir
        self.api_key = api_key
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, timeout_s: float = 90) -> LiveServer:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "AGENTBOX_DATA_DIR": str(self.data_dir),
            "AGENTBOX_API_KEYS": self.api_key,
            "AGENTBOX_SANDBOX_RUNTIME": str(REPO / ".runtime"),
            **self._env,
        }
        self._process = subprocess.Popen(
            [str(AGENTBOX), "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=self.data_dir.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = self._process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if match := READY.search(line):
                self.url = match.group(1)
                return self
        self.stop()
        raise RuntimeError("agentbox did not become ready:\n" + "".join(self.output))

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self.output.extend(self._process.stdout.readlines())
            self._process.stdout.close()
        self._process = None
