"""What both cgroup versions share: a session's cgroup, its kill loop, and the crash sweep.

A session's cgroup is one directory per controller (v1) or one directory (v2). The launch wrapper
writes its own pid into every cgroup.procs before exec, so nothing the session forks escapes.
Kill = freeze, SIGKILL every member, thaw, wait empty: no fork race, and it works even when bwrap's
reaper was left stopped by a ptrace (v2 with cgroup.kill: one write does all of it). Blocking;
call via to_thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from pathlib import Path

EMPTY_WAIT_S = 5.0


class SessionCgroup(ABC):
    dirs: tuple[Path, ...]
    """Every directory of this session's cgroup (v1: one per controller; v2: one)."""

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    @abstractmethod
    def create(self, memory_mb: int, pids_max: int, cpu_quota: float | None) -> None:
        """Make the directories and set the memory (no swap), task and CPU caps."""

    @abstractmethod
    def set_memory(self, memory_mb: int) -> None:
        """Change the memory cap (no swap) of an existing cgroup; OSError when the kernel refuses
        (v1: EBUSY for a cap below what the session already uses)."""

    @abstractmethod
    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this cgroup so far."""

    @abstractmethod
    def memory_limit(self) -> int:
        """The memory cap in bytes."""

    @abstractmethod
    def pids_current(self) -> int: ...

    @abstractmethod
    def pids_limit(self) -> int: ...

    @abstractmethod
    def cpu_usage_ns(self) -> int:
        """CPU time the session's processes used."""

    @abstractmethod
    def cpu_throttled(self) -> int:
        """Periods in which the CPU quota stopped the session."""

    @abstractmethod
    def _freeze(self) -> bool:
        """Stop every member (True) or say this host cannot (False)."""

    @abstractmethod
    def _thaw(self) -> None: ...

    def _kill_everything(self) -> bool:
        """SIGKILL every member in one step, if the kernel can (v2's cgroup.kill)."""
        return False

    def pids(self) -> list[int]:
        members: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                members.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return sorted(members)

    def kill(self, spare: Collection[int] = (), wait_s: float = EMPTY_WAIT_S) -> bool:
        """SIGKILL every process of the session but `spare` and wait up to wait_s until none other is
        left; whether none is. One that stays (uninterruptible sleep, a hung filesystem) keeps the
        session's uid in use: the caller must not hand that uid out again until a later kill says so.

        Sparing the outer bwrap lets it reap the namespace's pid 1, and sparing a forked kernel's
        parent lets it reap the kernel (which pid 1 waits for); killed together, they may be
        reparented to a host init that never reaps them and linger as zombies.
        """
        deadline = time.monotonic() + wait_s
        if not spare and self._kill_everything():
            while (left := self.pids()) and time.monotonic() < deadline:
                time.sleep(0.01)  # dying tasks leave cgroup.procs asynchronously
            return not left
        frozen = self._freeze()
        while True:
            members = set(self.pids()).difference(spare)
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if frozen:
                # v1 delivers the pending SIGKILL only once thawed, and the spared must run to reap.
                self._thaw()
                frozen = False
            if not members:
                return True
            if time.monotonic() > deadline:
                return not set(self.pids()).difference(spare)
            time.sleep(0.01)  # dying tasks leave cgroup.procs asynchronously; there is no event for it

    def remove(self) -> None:
        """rmdir the session's directories (after kill); leftovers are swept at the next start."""
        for directory in self.dirs:
            rmdir_when_empty(directory)


def sweep_sessions(sessions: Iterable[tuple[str, SessionCgroup]]) -> dict[str, SessionCgroup]:
    """Kill and remove session cgroups an earlier server left behind; those that keep a process
    the kill cannot end are left in place and returned by name."""
    busy: dict[str, SessionCgroup] = {}
    for name, cg in sessions:
        # Spare each tree's top (the outer bwrap, a forked kernel's parent) first so they reap the
        # namespace's pid 1 and the kernel, then the rest.
        pids = set(cg.pids())
        tops = [pid for pid in pids if _parent(pid) not in pids]
        cg.kill(spare=tops)
        for top in tops:
            _wait_gone(top)
        if cg.kill():
            cg.remove()
        else:
            busy[name] = cg
    return busy


def rmdir_when_empty(directory: Path) -> None:
    """rmdir, retrying for up to 5 s while the kernel still counts exiting tasks (EBUSY): a gVisor
    sandbox on a slow (emulated) CPU takes seconds to finish exiting."""
    for _ in range(500):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
            time.sleep(0.01)


def subdirectories(parent: Path) -> list[str]:
    try:
        return [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return []


def read_int(path: Path) -> int:
    text = path.read_text().strip()
    return -1 if text == "max" else int(text)


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (memory.events, cpu.stat, memory.oom_control): key → value."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def try_write(path: Path, value: str) -> bool:
    try:
        write(path, value)
        return True
    except OSError:
        return False


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


class Hierarchy(ABC):
    """The host's cgroup hierarchy, as far as sessions need it: one implementation per version."""

    version: int

    @abstractmethod
    def problem(self) -> str | None:
        """Why sessions cannot get cgroups here (a sentence), or None. Changes nothing."""

    @abstractmethod
    def describe(self) -> str:
        """Where session cgroups go and with which controllers, for `agentbox doctor`."""

    @abstractmethod
    def kill_path(self) -> str:
        """How a session is killed, for `agentbox doctor`."""

    cpu_knob: str
    """The file the CPU quota is written to, for `agentbox doctor`."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the hierarchy ready for session cgroups (v2: take the delegated subtree). Blocking."""

    @abstractmethod
    def session(self, group: str, name: str) -> SessionCgroup:
        """The cgroup of session `name` of the manager `group` (not created yet)."""

    @abstractmethod
    def session_names(self, group: str) -> list[str]:
        """The session cgroups that exist under `group`."""

    @abstractmethod
    def remove_group(self, group: str) -> None:
        """rmdir the manager's parent directories once its sessions are gone."""

    def sweep(self, group: str) -> dict[str, SessionCgroup]:
        """Kill and remove every session cgroup left under group by an earlier crash; those still
        holding a process that would not die stay, returned by name."""
        return sweep_sessions((name, self.session(group, name)) for name in self.session_names(group))
