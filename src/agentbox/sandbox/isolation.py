"""What isolation this host gives the configured backend: checked at start, printed by `agentbox doctor`.

Each check is (name, in force, detail). A check that is not in force means user code would run
with weaker isolation than configured; the server then refuses to start unless allow_weak is set.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from agentbox.sandbox import cgroups, seccomp
from agentbox.sandbox.backend import SHM_BYTES, Backend, Check
from agentbox.sandbox.config import SandboxConfig

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = {
    "bubblewrap": ("bwrap", "unshare", "setpriv", "prlimit", "mount"),
    "gvisor": ("runsc",),
}


@dataclass(frozen=True, slots=True)
class HostCapabilities:
    backend: str
    root: bool
    missing_tools: tuple[str, ...]
    cgroups: cgroups.Hierarchy
    cgroup_problem: str | None
    """Why sessions get no cgroups here (no limits, no cgroup kill path), or None."""
    seccomp_arch: str | None
    backend_checks: tuple[Check, ...]

    @property
    def backend_ok(self) -> bool:
        return all(ok for _, ok, _ in self.backend_checks)

    @property
    def privileged(self) -> bool:
        """Sessions can run as their own host uid on their own sized filesystem (never as root)."""
        return self.root and not self.missing_tools and self.backend_ok

    @property
    def limits(self) -> bool:
        """Sessions get cgroups: memory, task and CPU caps, and the cgroup kill path."""
        return self.privileged and self.cgroup_problem is None

    @property
    def strong(self) -> bool:
        """Everything the full recipe needs is here."""
        return self.limits and self.seccomp_arch is not None


def probe(backend: Backend) -> HostCapabilities:
    """Blocking (runs `bwrap --version` / `runsc --version`); call via to_thread."""
    tools = TOOLS.get(backend.name, ())
    missing = tuple(t for t in tools if shutil.which(t, path=SEARCH_PATH) is None)
    arch = seccomp.host_arch()
    hierarchy = cgroups.detect()
    return HostCapabilities(
        backend=backend.name,
        root=os.geteuid() == 0,
        missing_tools=missing,
        cgroups=hierarchy,
        cgroup_problem=hierarchy.problem(),
        seccomp_arch=arch.name if arch else None,
        backend_checks=tuple(backend.checks()),
    )


def report(caps: HostCapabilities, config: SandboxConfig) -> list[Check]:
    """One line per protection. Without cgroups a root server still gives each session its own uid
    and filesystem; only what needs a cgroup (or a per-session uid) is listed as missing."""
    limits = caps.limits
    hierarchy = caps.cgroups
    if config.cpus is None:
        cpus = "no CPU cap configured"
    else:
        cpus = (
            f"{config.cpus:g} CPU ({hierarchy.cpu_knob})"
            if limits
            else f"no cgroup: {config.cpus:g} CPU not enforced"
        )
    if limits:
        processes = f"{config.pids_max} processes+threads (pids.max / RLIMIT_NPROC)"
    elif caps.privileged:
        processes = (
            f"{config.pids_max} processes+threads (RLIMIT_NPROC of the session's own uid; no pids.max)"
        )
    else:
        processes = "no cgroup, and sessions share the server's uid: no per-session cap"
    checks: list[Check] = [
        *caps.backend_checks,
        (
            "cgroups",
            limits,
            hierarchy.describe() if limits else caps.cgroup_problem or "not root: no cgroups",
        ),
        (
            "seccomp",
            caps.seccomp_arch is not None,
            f"{caps.seccomp_arch} filter: EPERM for ptrace, bpf, userfaultfd, io_uring, keyctl, "
            "mount family, unshare/setns, CLONE_NEW*; EAFNOSUPPORT for non-unix sockets"
            if caps.seccomp_arch
            else f"no syscall table for {os.uname().machine}: no seccomp filter",
        ),
        (
            "unprivileged uid",
            caps.privileged,
            "one host uid per live session, no capabilities, no new privileges"
            if caps.privileged
            else "not root: runs as the server's uid",
        ),
        ("clean env", True, "env -i before the sandbox; only an allowlist is set inside"),
        (
            "kernel start",
            True,
            "forked from one template (numpy, pandas, matplotlib imported once) into bwrap's "
            "namespaces; runs no user code unless uid 1000, no capabilities, no new privileges, seccomp"
            if forked(caps, config)
            else "a fresh Python per kernel",
        ),
        (
            "private /mnt/data fs",
            caps.privileged,
            f"{config.session_disk_mb} MiB tmpfs per session (ENOSPC past it), host path hidden"
            if caps.privileged
            else "not root: a plain directory without a size limit",
        ),
        (
            "memory limit",
            limits,
            f"{config.memory_mb} MiB cgroup memory(+swap) limit, OOM kill reported"
            if limits
            else f"no cgroup: {config.memory_mb} MiB not enforced",
        ),
        ("process limit", caps.privileged, processes),
        ("cpu limit", limits or config.cpus is None, cpus),
        ("kill path", caps.privileged or caps.backend == "bubblewrap", _kill_path(caps)),
        ("/tmp size", True, f"{config.tmp_size_mb} MiB tmpfs; /dev/shm {SHM_BYTES >> 20} MiB"),
        ("open files", True, f"RLIMIT_NOFILE {config.nofile}"),
        ("file size", True, f"RLIMIT_FSIZE {config.session_disk_mb} MiB"),
        ("output cap", True, f"{config.output_limit_bytes} bytes of stdout+stderr per cell, then a marker"),
        (
            "session lifetime",
            True,
            f"idle {config.session_idle_s:g} s, total {config.session_max_s:g} s, "
            f"cell {config.exec_timeout_s:g} s + {config.interrupt_grace_s:g} s grace",
        ),
    ]
    if caps.missing_tools:
        checks.append(("tools", False, f"missing: {', '.join(caps.missing_tools)}"))
    if not caps.strong:
        detail = "allow_weak is set" if config.allow_weak else "allow_weak is off"
        checks.append(("weak mode allowed", config.allow_weak, detail))
    return checks


def _kill_path(caps: HostCapabilities) -> str:
    if caps.limits:
        return caps.cgroups.kill_path()
    if caps.backend == "bubblewrap":
        return "no cgroup: SIGKILL of bwrap, whose pid 1 dies with it and takes its whole pid namespace"
    return "no cgroup: SIGKILL of runsc, whose sandbox and gofer die with it (parent-death signal)"


def missing(checks: list[Check]) -> list[Check]:
    """The protections not in force (the weak-mode switch itself is not a protection)."""
    return [check for check in checks if not check[1] and check[0] != "weak mode allowed"]


def forked(caps: HostCapabilities, config: SandboxConfig) -> bool:
    """Whether kernels are forked from the template (bubblewrap, strong mode, fork_server on)."""
    return caps.backend == "bubblewrap" and caps.strong and config.fork_server


def unavailable_reason(caps: HostCapabilities) -> str | None:
    """A sentence saying why the full sandbox cannot run here, or None."""
    if not caps.backend_ok:
        failed = "; ".join(detail for _, ok, detail in caps.backend_checks if not ok)
        return f"the {caps.backend} backend is not usable: {failed}; run `make setup`."
    if not caps.root:
        return (
            "the server is not root, so sessions cannot get their own uid and filesystem; "
            "run as root or set allow_weak."
        )
    if caps.missing_tools:
        return f"missing tools: {', '.join(caps.missing_tools)}."
    if caps.cgroup_problem:
        return caps.cgroup_problem
    if caps.seccomp_arch is None:
        return f"no seccomp syscall table for this machine ({os.uname().machine})."
    return None
