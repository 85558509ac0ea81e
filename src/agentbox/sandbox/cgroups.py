"""Per-session cgroup v1 directories: the memory/pids/cpu caps and the one reliable kill path.

    /sys/fs/cgroup/<controller>/<group>/<session>    controller ∈ memory, pids, cpu, cpuacct, freezer

The launch wrapper writes its own pid into every cgroup.procs before exec, so nothing the
session forks escapes. Kill = freeze, SIGKILL every member, thaw, wait empty, rmdir: no fork race,
and it works even when bwrap's reaper was left stopped by a ptrace. Blocking; call via to_thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
EMPTY_WAIT_S = 5.0


def available() -> bool:
    """All controllers are mounted (v1) and writable by us."""
    return all(os.access(CGROUP_ROOT / c / "cgroup.procs", os.W_OK) for c in CONTROLLERS)


class SessionCgroup:
    def __init__(self, group: str, name: str) -> None:
        self.dirs = {c: CGROUP_ROOT / c / group / name for c in CONTROLLERS}

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def create(self, memory_mb: int, pids_max: int, cpu_quota: float | None) -> None:
        for directory in self.dirs.values():
            directory.mkdir(parents=True, exist_ok=True)
        limit = str(memory_mb << 20)
        _write(self.dirs["memory"] / "memory.limit_in_bytes", limit)
        with contextlib.suppress(OSError):  # absent without swap accounting
            _write(self.dirs["memory"] / "memory.memsw.limit_in_bytes", limit)
        _write(self.dirs["pids"] / "pids.max", str(pids_max))
        if cpu_quota is not None:
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", "100000")
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(int(cpu_quota * 100000)))

    def pids(self) -> list[int]:
        try:
            text = (self.dirs["pids"] / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def oom_kills(self) -> int:
        try:
            for line in (self.dirs["memory"] / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def kill(self, spare: Collection[int] = ()) -> None:
        """SIGKILL every process of the session but `spare` and wait until none other is left.

        Sparing the outer bwrap lets it reap the namespace's pid 1, and sparing a forked kernel's
        parent lets it reap the kernel (which pid 1 waits for); killed together, they may be
        reparented to a host init that never reaps them and linger as zombies.
        """
        freezer = self.dirs["freezer"] / "freezer.state"
        frozen = _try_write(freezer, "FROZEN")
        deadline = time.monotonic() + EMPTY_WAIT_S
        while True:
            members: set[int] = set()
            for directory in self.dirs.values():
                with contextlib.suppress(OSError):
                    members.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            members.difference_update(spare)
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if frozen:
                # Frozen tasks take the pending SIGKILL only once thawed.
                _try_write(freezer, "THAWED")
                frozen = False
            if not members or time.monotonic() > deadline:
                return
            time.sleep(0.01)  # dying tasks leave cgroup.procs asynchronously; there is no event for it

    def remove(self) -> None:
        """rmdir every controller dir (after kill); leftovers are swept at the next start."""
        for directory in self.dirs.values():
            for _ in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)


def sweep(group: str) -> int:
    """Kill and remove every session cgroup left under group by an earlier crash; count them."""
    names: set[str] = set()
    for controller in CONTROLLERS:
        parent = CGROUP_ROOT / controller / group
        with contextlib.suppress(OSError):
            names.update(p.name for p in parent.iterdir() if p.is_dir())
    for name in names:
        cg = SessionCgroup(group, name)
        # Spare each tree's top (the outer bwrap, a forked kernel's parent) first so they reap the
        # namespace's pid 1 and the kernel, then the rest.
        pids = set(cg.pids())
        tops = [pid for pid in pids if _parent(pid) not in pids]
        cg.kill(spare=tops)
        for top in tops:
            _wait_gone(top)
        cg.kill()
        cg.remove()
    return len(names)


def remove_group(group: str) -> None:
    """rmdir the per-manager parent dirs once their sessions are gone."""
    for controller in CONTROLLERS:
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / controller / group).rmdir()


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return  # exited; its own parent reaps it
        except OSError:
            return
        time.sleep(0.01)  # no event tells us another process's child has exited


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _try_write(path: Path, value: str) -> bool:
    try:
        _write(path, value)
        return True
    except OSError:
        return False
