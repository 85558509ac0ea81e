"""What isolation this host can give, checked once at start and reported by `agentbox doctor`."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from agentbox.sandbox import cgroups

TOOLS = ("bwrap", "unshare", "setpriv", "prlimit", "mount", "umount")

Check = tuple[str, bool, str]


@dataclass(frozen=True, slots=True)
class HostCapabilities:
    root: bool
    missing_tools: tuple[str, ...]
    bwrap_version: str
    cgroups: bool

    @property
    def strong(self) -> bool:
        """Everything the full recipe needs is here."""
        return self.root and not self.missing_tools and self.cgroups


def probe() -> HostCapabilities:
    """Blocking (runs `bwrap --version`); call via to_thread."""
    search = "/usr/sbin:/usr/bin:/sbin:/bin"
    missing = tuple(t for t in TOOLS if shutil.which(t, path=search) is None)
    version = ""
    if "bwrap" not in missing:
        try:
            out = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, timeout=10)
            version = out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            version = ""
    return HostCapabilities(os.geteuid() == 0, missing, version, cgroups.available())


def report(caps: HostCapabilities, config_allows_weak: bool) -> list[Check]:
    bwrap = bool(caps.bwrap_version)
    checks: list[Check] = [
        ("backend", bwrap, caps.bwrap_version or "bubblewrap (bwrap) not found"),
        ("user namespace", bwrap, "--unshare-user, uid 1000 inside, --disable-userns, --cap-drop ALL"),
        ("pid namespace", bwrap, "--unshare-pid, --die-with-parent"),
        ("net namespace", bwrap, "--unshare-net: only lo, no route out"),
        ("ipc namespace", bwrap, "--unshare-ipc"),
        ("uts namespace", bwrap, "--unshare-uts, hostname 'sandbox'"),
        (
            "unprivileged uid",
            caps.root and "setpriv" not in caps.missing_tools,
            "one host uid per live session via setpriv"
            if caps.root
            else "not root: runs as the server's uid",
        ),
        (
            "private /mnt/data fs",
            caps.root and "mount" not in caps.missing_tools,
            "size-limited tmpfs per session, host path hidden by a private mount namespace"
            if caps.root
            else "not root: a plain directory without a size limit",
        ),
        ("clean env", True, "env -i before bwrap and --clearenv; only an allowlist is set"),
        ("read-only root", bwrap, "--remount-ro /, /usr and the runtime bound read-only, /tmp size-limited"),
        ("rlimits", "prlimit" not in caps.missing_tools, "core 0, nofile 1024, fsize = disk quota, nproc"),
        (
            "cgroups",
            caps.cgroups and caps.root,
            "v1 memory, pids, cpu, cpuacct, freezer per session; freezer kill"
            if caps.cgroups
            else "cgroup v1 controllers not writable: no memory/pids cap, kill by process group only",
        ),
        ("seccomp", False, "no seccomp filter yet (ptrace, bpf, io_uring ... are left to the kernel)"),
    ]
    if not caps.strong:
        detail = "allow_weak is set" if config_allows_weak else "allow_weak is off"
        checks.append(("weak mode allowed", config_allows_weak, detail))
    return checks


def unavailable_reason(caps: HostCapabilities) -> str | None:
    """A sentence saying why the full sandbox cannot run here, or None."""
    if not caps.bwrap_version:
        return "bubblewrap (bwrap) is not installed; run `make setup` (scripts/system-packages.sh)."
    if not caps.root:
        return (
            "the server is not root, so sessions cannot get their own uid and filesystem; "
            "run as root or set allow_weak."
        )
    if caps.missing_tools:
        return f"missing tools: {', '.join(caps.missing_tools)}."
    if not caps.cgroups:
        return "cgroup v1 memory/pids/cpu/cpuacct/freezer controllers are not writable in /sys/fs/cgroup."
    return None
