"""The backend seam: what turns one session's LaunchSpec into a running sandbox, and cleans up after it.

    manager ──LaunchSpec──▶ backend.prepare() ──Launch(argv, fds)──▶ Kernel.start ─ … ─ kill (cgroup)
                                                                               └──▶ backend.release()
    (bubblewrap, strong mode: prepare(spec, strong, STUB) ──▶ ForkServer.start_kernel, see forkserver.py)

Every backend runs its whole process tree inside the session's cgroups (the wrapper joins them
before exec), so the one kill path — freezer, SIGKILL every pid — is the manager's, not the backend's.
A backend only says how to start, what to tidy after the kill, and what a crashed server left.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

Check = tuple[str, bool, str]

ENV = {
    "PATH": "/opt/agentbox/runtime/bin:/usr/bin:/bin",
    "HOME": "/mnt/data",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/mpl",
    "XDG_CACHE_HOME": "/tmp/cache",  # keeps font caches out of the user's /mnt/data
}
"""The sandbox's whole environment (bwrap adds PWD)."""

SHM_BYTES = 64 << 20
"""Size of the sandbox's /dev/shm (POSIX shared memory, multiprocessing's semaphores): ENOSPC past it,
rather than an OOM kill of the session by pages that would otherwise only the memory limit bounds."""

SANDBOX_UID = 1000
"""The uid user code sees inside (the host uid differs per session)."""

EXECUTOR = ("/opt/agentbox/runtime/bin/python3", "-E", "-s", "-B", "/opt/agentbox/inside/executor.py")

PASSWD = (
    "root:x:0:0::/:/usr/sbin/nologin\n"
    "sandbox:x:1000:1000:sandbox:/mnt/data:/bin/sh\n"
    "nobody:x:65534:65534::/:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"
HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost\n"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    name: str
    """The session's directory/cgroup name; unique among live sessions."""
    generation: int
    """How many kernels this session started before this one (container ids must not repeat)."""
    stage_dir: Path
    runtime_dir: Path
    data_dir: Path
    uid: int
    cgroup_procs: tuple[str, ...]
    tmp_bytes: int
    fsize_bytes: int
    nproc: int
    nofile: int
    output_limit: int
    max_images: int

    @property
    def executor_args(self) -> list[str]:
        return [*EXECUTOR, str(self.output_limit), str(self.max_images)]


def hard_rlimits(spec: LaunchSpec) -> dict[str, int]:
    """Soft = hard limits of every session process, by prlimit(1)'s names (user code cannot raise them)."""
    return {"core": 0, "nofile": spec.nofile, "fsize": spec.fsize_bytes, "nproc": spec.nproc}


@dataclass(slots=True)
class Launch:
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    owned_fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Close our copies of the fds handed to the child (call once it has started)."""
        for fd in self.owned_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.owned_fds.clear()


class Backend(Protocol):
    name: str
    spare_outer: bool
    """Kill the session's processes but the outermost first (it reaps what it started), then it."""

    def host_pids_max(self, pids_max: int) -> int:
        """pids.max of the session cgroup for a user-visible limit of pids_max tasks."""
        ...

    def prepare(self, spec: LaunchSpec, privileged: bool) -> Launch:
        """argv and fds for one kernel. privileged (a root server): the sandbox runs as spec.uid with
        its own staged filesystem; else as the server's own uid (allow_weak only). Blocking."""
        ...

    def kill_without_cgroup(self, outer_pid: int) -> None:
        """Weak mode's kill path, where no cgroup holds the session: end the whole sandbox started
        as outer_pid through what the backend itself guarantees. Blocking."""
        ...

    def release(self, spec: LaunchSpec) -> None:
        """Tidy after the kernel's processes were killed (container records, bundles). Blocking."""
        ...

    def sweep(self) -> None:
        """Remove what a crashed server of this group left (after its cgroups were killed). Blocking."""
        ...

    def checks(self) -> list[Check]:
        """The isolation this backend gives on this host, one line each, for `agentbox doctor`."""
        ...
