"""A real SessionManager on a private sessions dir, driven from synchronous tests.

One asyncio.Runner per harness keeps a single event loop alive across calls, so a module-scoped
harness can keep its kernels warm between tests. BACKENDS lists the backends the security suite
runs against; one is skipped (with the reason) only when its tools are not installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentbox.sandbox import Execution, InputFile, SandboxConfig, SessionManager
from agentbox.sandbox.cgroups import SessionCgroup

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / ".runtime"
BACKENDS = ("bubblewrap", "gvisor")
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

IN_EMULATED_VM = os.environ.get("CGROUP2_VM_ACCEL") == "tcg"
"""Inside scripts/cgroup2-vm under software emulation: a gVisor kernel takes minutes to start."""

WORKER_UID_SPAN = 1_000_000
SERVER_UID_BASE = 1_200_000
"""Where a test's `agentbox serve` puts its sessions' uids: the server's own default."""


def worker_uid(base: int) -> int:
    """`base` moved into this pytest-xdist worker's own range (`make test` runs two workers): tests
    running side by side never share a host uid, which RLIMIT_NPROC counts across the whole host and
    the lifecycle and crash tests look for among the host's processes."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base + int(worker.removeprefix("gw")) * WORKER_UID_SPAN


def cell_seconds(seconds: float) -> float:
    """A cell timeout for work that must finish (allocate, fork, plot): under software emulation
    CPU-bound work is about 12 times slower, so such a cell gets 12 times the time there."""
    return seconds * 12 if IN_EMULATED_VM else seconds


# Small limits (spec/sandbox.md §2 harness): a broken build cannot take the machine down.
SMALL_LIMITS: dict[str, Any] = {
    "start_timeout_s": 600.0 if IN_EMULATED_VM else 30.0,
    "exec_timeout_s": cell_seconds(10.0),
    "interrupt_grace_s": 1.0,
    "session_disk_mb": 32,
    "tmp_size_mb": 16,
    "memory_mb": 256,
    "pids_max": 64,
    "cpus": 0.5,
    "nofile": 128,
    "session_inodes": 2000,
    "output_limit_bytes": 64 * 1024,
}

FORK_BOMB = (
    "import errno, os, time\n"
    "made = 0\n"
    "for _ in range(500):\n"  # bounded: a broken limit fails the test, not the machine
    "    try:\n"
    "        pid = os.fork()\n"
    "    except OSError as e:\n"
    "        print(errno.errorcode[e.errno], made); break\n"
    "    if pid == 0:\n"
    "        time.sleep(60); os._exit(0)\n"
    "    made += 1\n"
)
"""Forks until refused; prints the errno's name and how many forks succeeded."""


def skip_reason() -> str | None:
    """Why real sandboxes cannot run here, or None."""
    if os.geteuid() != 0:
        return "sandbox security tests need root (per-session uid, tmpfs and cgroups)"
    if shutil.which("bwrap", path=SEARCH_PATH) is None:
        return "bubblewrap (bwrap) is not installed"
    if not (RUNTIME / "bin" / "python3").exists():
        return "the sandbox runtime .runtime is not built (make setup)"
    return None


def backend_skip_reason(backend: str) -> str | None:
    if backend == "gvisor" and shutil.which("runsc", path=SEARCH_PATH) is None:
        return "gVisor (runsc) is not installed: apt-get install runsc (scripts/system-packages.sh)"
    return None


requires_sandbox = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


class Harness:
    def __init__(self, sessions_dir: Path, **overrides: Any) -> None:
        settings: dict[str, Any] = {"uid_base": worker_uid(1_300_000), **SMALL_LIMITS}
        settings.update(overrides)
        self.config = SandboxConfig(sessions_dir=sessions_dir, runtime_dir=RUNTIME, **settings)
        self.backend = self.config.backend
        self.runner = asyncio.Runner()
        self.manager = SessionManager(self.config)
        self.call(self.manager.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def run(
        self,
        code: str,
        key: str = "thread_a",
        files: Sequence[InputFile] = (),
        timeout_s: float | None = None,
    ) -> Execution:
        return self.call(self.manager.execute(key, code, files, timeout_s=timeout_s))

    def wait(self, seconds: float) -> None:
        """Let the manager's own tasks (the reaper) run for a while."""
        self.call(asyncio.sleep(seconds))

    def session_uid(self, key: str) -> int:
        return self.manager._sessions[key].uid

    def session_pids(self, key: str) -> list[int]:
        cgroup = self.manager._sessions[key].cgroup
        assert cgroup is not None
        return cgroup.pids()

    def cgroup(self, key: str) -> SessionCgroup:
        cgroup = self.manager._sessions[key].cgroup
        assert cgroup is not None
        return cgroup

    def cgroup_pid_files(self, key: str) -> list[Path]:
        cgroup = self.manager._sessions[key].cgroup
        assert cgroup is not None
        return [Path(p) for p in cgroup.procs_files]

    def data_dir(self, key: str) -> Path:
        return self.manager._sessions[key].data_dir

    def close(self) -> None:
        try:
            self.call(self.manager.aclose())
        finally:
            self.runner.close()


def host_uids() -> set[int]:
    """Real uids of every host process."""
    uids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    uids.add(int(next(line for line in f if line.startswith("Uid:")).split()[1]))
            except (OSError, StopIteration):
                continue
    return uids


def host_pids() -> set[int]:
    return {int(e) for e in os.listdir("/proc") if e.isdigit()}
