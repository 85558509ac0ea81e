"""The narrow configuration a sandbox backend and its session manager need."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

POOL_MEMORY_EACH = 768 << 20
POOL_MAX = 64


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    sessions_dir: Path
    """Host directory under which each session gets its own directory (its /mnt/data lives there)."""
    runtime_dir: Path
    """The sandbox's Python virtual environment (made from Debian's /usr/bin/python3), bound read-only."""
    exec_timeout_s: float = 60.0
    """Wall clock per cell; past it the cell is interrupted with a real SIGINT."""
    interrupt_grace_s: float = 3.0
    """How long an interrupted cell may take to stop before the whole session is killed."""
    output_limit_bytes: int = 100_000
    """stdout+stderr kept per cell; the rest is dropped with a marker and the true size reported."""
    max_images_per_cell: int = 20
    session_disk_mb: int = 512
    """Size of the session's /mnt/data filesystem (ENOSPC past it)."""
    tmp_size_mb: int = 256
    memory_mb: int = 1024
    uid_base: int = 1_200_000
    """Sessions run as unprivileged host uids uid_base, uid_base+1, …, one per live session."""
    allow_weak: bool = False
    """Allow running with weaker isolation than configured (e.g. not root: no setpriv, no per-session fs)."""
    pids_max: int = 256
    """Processes and threads of one session (cgroup pids.max; also its uid's RLIMIT_NPROC)."""
    cpus: float | None = None
    """CPU share of one session (cgroup CFS quota), None for no cap."""
    max_sessions: int = 1000
    """Live sessions at once; each holds one host uid from uid_base on."""
    pool_size: int = 0
    """Sandboxes kept started and ready (kernel up, libraries imported) for new sessions to claim."""
    start_timeout_s: float = 30.0
    """Time a new kernel gets to import its libraries and say hello."""
    concurrent_starts: int = 0
    """Sandboxes started at the same time (0: one per CPU core); more starts wait their turn."""
    stage_dir: Path = Path("/run/agentbox-stage")
    """An empty host directory each kernel's private mount namespace covers with its staging tmpfs."""
    fork_server: bool = True
    """bubblewrap, strong mode: fork each kernel from a template that imported the libraries once."""
    backend: str = "bubblewrap"
    """"bubblewrap" (default) or "gvisor" (runsc run with an OCI bundle)."""
    nofile: int = 1024
    """Open files of one process (RLIMIT_NOFILE, hard)."""
    session_idle_s: float = 1800.0
    """A session unused this long is torn down (Azure: 30 min idle); the next run starts fresh."""
    session_max_s: float = 3600.0
    """A session older than this is torn down once idle (Azure: 1 h active)."""
    runsc_root: Path = Path("/run/agentbox-runsc")
    """Parent of runsc's per-manager container-state directories (gVisor backend)."""
    session_inodes: int = 100_000
    """Files and directories the session's /mnt/data can hold (tmpfs nr_inodes; ENOSPC past it)."""


def default_pool_size(backend: str, fork_server: bool) -> int:
    """Sandboxes to keep ready when the operator did not say: sized to the machine.

    A forked kernel idles at about 6 MB unique and 20 MB proportional memory, so the pool takes one
    sandbox per 768 MiB of RAM (under 3% of it), up to 64; an exec'd kernel (gVisor, or the fork
    server off) is a whole Python with the libraries, ~70-100 MB and seconds of CPU each: one per core.
    """
    cores = os.cpu_count() or 1
    if backend != "bubblewrap" or not fork_server:
        return cores
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(cores, min(POOL_MAX, memory // POOL_MEMORY_EACH))
