"""cgroup v2: one directory per session, under the subtree delegated to the server.

    <mount><own cgroup>/                         the delegated root: +memory +pids +cpu for children
    <mount><own cgroup>/server                   the server, and whatever shared its cgroup
    <mount><own cgroup>/agentbox-<digest>/<s>    one session: memory.max, memory.swap.max=0, pids.max, cpu.max

The server's own cgroup comes from /proc/self/cgroup: a systemd service's with Delegate=yes, a
container's namespace root, or wherever a person started it. "No internal processes": a cgroup
that enables controllers for its children may hold no process itself (the true root excepted), so
before enabling them the server moves every process of its cgroup into the leaf `server`.
A process that starts later inside `server` (a second manager, a test's server) finds the
controllers already enabled one level up and uses that as its root.
Kill = cgroup.kill (Linux ≥ 5.14); sparing a reaper, or on older kernels, cgroup.freeze + SIGKILL.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from agentbox.sandbox.cgroups.base import (
    Hierarchy,
    SessionCgroup,
    read_int,
    read_keyed,
    rmdir_when_empty,
    subdirectories,
    try_write,
    write,
)

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
LEAF = "server"
ENABLE = " ".join(f"+{c}" for c in CONTROLLERS)
MOVE_ATTEMPTS = 10


class SessionCgroupV2(SessionCgroup):
    def __init__(self, group_dir: Path, name: str) -> None:
        self._group_dir = group_dir
        self._dir = group_dir / name
        self.dirs = (self._dir,)

    def create(self, memory_mb: int, pids_max: int, cpu_quota: float | None) -> None:
        self._group_dir.mkdir(exist_ok=True)
        if not set(CONTROLLERS) <= enabled_controllers(self._group_dir):
            write(self._group_dir / "cgroup.subtree_control", ENABLE)
        self._dir.mkdir(exist_ok=True)
        self.set_memory(memory_mb)
        with contextlib.suppress(OSError):  # absent without swap accounting (no swap to use then)
            write(self._dir / "memory.swap.max", "0")
        write(self._dir / "pids.max", str(pids_max))
        if cpu_quota is not None:
            write(self._dir / "cpu.max", f"{int(cpu_quota * 100000)} 100000")

    def set_memory(self, memory_mb: int) -> None:
        write(self._dir / "memory.max", str(memory_mb << 20))

    def oom_kills(self) -> int:
        return read_keyed(self._dir / "memory.events").get("oom_kill", 0)

    def memory_limit(self) -> int:
        return read_int(self._dir / "memory.max")

    def pids_current(self) -> int:
        return read_int(self._dir / "pids.current")

    def pids_limit(self) -> int:
        return read_int(self._dir / "pids.max")

    def cpu_usage_ns(self) -> int:
        return read_keyed(self._dir / "cpu.stat").get("usage_usec", 0) * 1000

    def cpu_throttled(self) -> int:
        return read_keyed(self._dir / "cpu.stat").get("nr_throttled", 0)

    def _freeze(self) -> bool:
        # v2 lets a fatal signal through to frozen tasks; freezing only stops new forks meanwhile.
        return try_write(self._dir / "cgroup.freeze", "1")

    def _thaw(self) -> None:
        try_write(self._dir / "cgroup.freeze", "0")

    def _kill_everything(self) -> bool:
        return try_write(self._dir / "cgroup.kill", "1")


class V2(Hierarchy):
    version = 2
    cpu_knob = "cpu.max"

    def __init__(self, mount: Path) -> None:
        self._mount = mount
        self._own = own_cgroup()
        self._root = self._delegated_root()

    def _delegated_root(self) -> Path | None:
        if self._own is None:
            return None
        own = self._mount / self._own.lstrip("/")
        if own.name == LEAF and set(CONTROLLERS) <= enabled_controllers(own.parent):
            return own.parent  # an earlier start (this process or its parent) moved us here
        return own

    def problem(self) -> str | None:
        root = self._root
        if root is None:
            return "cgroup v2 is mounted, but /proc/self/cgroup names no cgroup of ours inside it."
        try:
            available = set((root / "cgroup.controllers").read_text().split())
        except OSError as exc:
            return f"cgroup v2: cannot read {root}/cgroup.controllers ({exc.strerror})."
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            return (
                f"cgroup v2: the {'/'.join(missing)} controllers are not delegated to {root} "
                "(a systemd service needs Delegate=yes; a container its own cgroup namespace)."
            )
        if not (os.access(root, os.W_OK) and os.access(root / "cgroup.subtree_control", os.W_OK)):
            return f"cgroup v2: {root} is not writable (a container needs its cgroup mounted read-write)."
        return None

    def describe(self) -> str:
        return (
            f"cgroup v2 at {self._root}: {', '.join(CONTROLLERS)}; sessions in agentbox-*/, server in {LEAF}/"
        )

    def kill_path(self) -> str:
        if self._root is not None and (self._root / "cgroup.kill").exists():
            return "cgroup.kill (sparing bwrap's reaper: cgroup.freeze, SIGKILL every other pid, thaw)"
        return "cgroup.freeze, SIGKILL every pid in the session cgroup, thaw"

    def prepare(self) -> None:
        """Enable the controllers for our children, first moving our cgroup's processes into LEAF."""
        root = self._root
        if root is None or set(CONTROLLERS) <= enabled_controllers(root):
            return
        for _ in range(MOVE_ATTEMPTS):
            try:
                write(root / "cgroup.subtree_control", ENABLE)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
            leaf = root / LEAF
            leaf.mkdir(exist_ok=True)
            moved = 0
            for pid in (root / "cgroup.procs").read_text().split():
                # Gone meanwhile (ESRCH), or a kernel thread of the true root (EINVAL): not ours to move.
                moved += try_write(leaf / "cgroup.procs", pid)
            log.info("moved %d process(es) of %s into %s to delegate its controllers", moved, root, leaf)
        raise OSError(errno.EBUSY, f"processes keep appearing in {root}; cannot enable {ENABLE}")

    def session(self, group: str, name: str) -> SessionCgroup:
        assert self._root is not None
        return SessionCgroupV2(self._root / group, name)

    def session_names(self, group: str) -> list[str]:
        return sorted(subdirectories(self._root / group)) if self._root is not None else []

    def remove_group(self, group: str) -> None:
        if self._root is not None:
            rmdir_when_empty(self._root / group)


def own_cgroup() -> str | None:
    """Our cgroup v2 path ("0::<path>" in /proc/self/cgroup), relative to the mount's root."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    path = line[3:].strip()
                    # Outside our cgroup namespace's root the kernel writes /.. : not reachable here.
                    return None if "/.." in path or path.startswith("..") else path
    except OSError:
        pass
    return None


def enabled_controllers(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()
