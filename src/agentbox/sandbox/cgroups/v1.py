"""cgroup v1: one directory per controller for each session.

    /sys/fs/cgroup/<controller>/<group>/<session>    controller ∈ memory, pids, cpu, cpuacct, freezer

Kill = freezer FROZEN, SIGKILL every member, THAWED (v1 has no cgroup.kill).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from agentbox.sandbox.cgroups.base import (
    Hierarchy,
    SessionCgroup,
    read_int,
    read_keyed,
    subdirectories,
    try_write,
    write,
)

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")


class SessionCgroupV1(SessionCgroup):
    def __init__(self, mount: Path, group: str, name: str) -> None:
        self._dir = {c: mount / c / group / name for c in CONTROLLERS}
        self.dirs = tuple(self._dir.values())

    def create(self, memory_mb: int, pids_max: int, cpu_quota: float | None) -> None:
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)
        self.set_memory(memory_mb)
        write(self._dir["pids"] / "pids.max", str(pids_max))
        if cpu_quota is not None:
            write(self._dir["cpu"] / "cpu.cfs_period_us", "100000")
            write(self._dir["cpu"] / "cpu.cfs_quota_us", str(int(cpu_quota * 100000)))

    def set_memory(self, memory_mb: int) -> None:
        # memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise memsw first
        # and lower it last. Without swap accounting the memsw file is absent.
        memory = self._dir["memory"]
        limit = str(memory_mb << 20)
        memsw = memory / "memory.memsw.limit_in_bytes"
        try:
            raising = memory_mb << 20 >= read_int(memory / "memory.limit_in_bytes")
        except (OSError, ValueError):
            raising = True
        if raising:
            with contextlib.suppress(OSError):
                write(memsw, limit)
        write(memory / "memory.limit_in_bytes", limit)
        with contextlib.suppress(OSError):
            write(memsw, limit)

    def oom_kills(self) -> int:
        return read_keyed(self._dir["memory"] / "memory.oom_control").get("oom_kill", 0)

    def memory_limit(self) -> int:
        return read_int(self._dir["memory"] / "memory.limit_in_bytes")

    def pids_current(self) -> int:
        return read_int(self._dir["pids"] / "pids.current")

    def pids_limit(self) -> int:
        return read_int(self._dir["pids"] / "pids.max")

    def cpu_usage_ns(self) -> int:
        return read_int(self._dir["cpuacct"] / "cpuacct.usage")

    def cpu_throttled(self) -> int:
        return read_keyed(self._dir["cpu"] / "cpu.stat").get("nr_throttled", 0)

    def _freeze(self) -> bool:
        return try_write(self._dir["freezer"] / "freezer.state", "FROZEN")

    def _thaw(self) -> None:
        try_write(self._dir["freezer"] / "freezer.state", "THAWED")


class V1(Hierarchy):
    version = 1
    cpu_knob = "cpu.cfs_quota_us"

    def __init__(self, mount: Path) -> None:
        self._mount = mount

    def problem(self) -> str | None:
        missing = [c for c in CONTROLLERS if not os.access(self._mount / c / "cgroup.procs", os.W_OK)]
        if missing:
            return (
                f"no cgroup v2 at {self._mount}, and the cgroup v1 controllers {'/'.join(missing)} "
                f"are not writable under it."
            )
        return None

    def describe(self) -> str:
        return f"cgroup v1: {', '.join(CONTROLLERS)} under {self._mount}/<controller>/agentbox-*"

    def kill_path(self) -> str:
        return "freezer FROZEN, SIGKILL every pid in the session cgroup, THAWED"

    def prepare(self) -> None:
        return None  # the controllers are mounted separately; nothing to enable

    def session(self, group: str, name: str) -> SessionCgroup:
        return SessionCgroupV1(self._mount, group, name)

    def session_names(self, group: str) -> list[str]:
        return sorted({n for c in CONTROLLERS for n in subdirectories(self._mount / c / group)})

    def remove_group(self, group: str) -> None:
        for controller in CONTROLLERS:
            with contextlib.suppress(OSError):
                (self._mount / controller / group).rmdir()
