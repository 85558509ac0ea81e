"""What peers do, measured on this machine: a fresh Jupyter kernel (unsandboxed) and `python -c`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent
BENCH_PYTHON = REPO / ".clients" / "bench" / "bin" / "python"
RUNTIME_PYTHON = REPO / ".runtime" / "bin" / "python3"


@contextmanager
def kernelspec_dir() -> Iterator[None]:
    """A private JUPYTER_PATH whose only kernel runs the bench venv (ipykernel + the runtime's libraries)."""
    with tempfile.TemporaryDirectory() as root:
        spec = Path(root) / "kernels" / "bench"
        spec.mkdir(parents=True)
        argv = [str(BENCH_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}", "--log-level=ERROR"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "bench", "language": "python"})
        )
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = root
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


class Kernel:
    """A started Jupyter kernel and a blocking client, over zmq on loopback (jupyter's default)."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="bench")
        # No MPLBACKEND: ipykernel then picks its inline backend, which shows figures as PNGs.
        self.manager.start_kernel(env={"PATH": "/usr/bin:/bin"})
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str) -> tuple[str, list[bytes]]:
        """Execute and return (stdout, PNG images) once the kernel is idle again."""
        text: list[str] = []
        images: list[bytes] = []

        def collect(message: dict[str, object]) -> None:
            content = message["content"]
            assert isinstance(content, dict)
            if message["msg_type"] == "stream":
                text.append(str(content["text"]))
            elif message["msg_type"] in ("display_data", "execute_result") and "image/png" in content["data"]:
                images.append(base64.b64decode(content["data"]["image/png"]))

        self.client.execute_interactive(code, output_hook=collect, timeout=120)
        return "".join(text), images

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def jupyter_first_output(code: str) -> tuple[float, str, list[bytes]]:
    """Start a kernel, run `code`, and time start → output (the kernel is shut down after)."""
    started = time.perf_counter()
    kernel = Kernel()
    try:
        text, images = kernel.run(code)
        return time.perf_counter() - started, text, images
    finally:
        kernel.close()


def python_c(code: str, cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(RUNTIME_PYTHON), "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": str(cwd)},
    )
    return time.perf_counter() - started, done.stdout
