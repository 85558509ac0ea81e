"""The bubblewrap backend: private mount ns → staging → unprivileged uid → prlimit → bwrap → executor.

Why the detour as root: bwrap running as the session's unprivileged uid cannot traverse a project
under a 0700 home, so a root shell in a private mount namespace first bind-mounts the runtime,
the executor source and the session's data dir into a small staging tmpfs (invisible to the host),
then drops to the uid. The shell script is a constant; everything variable is a positional
argument, never text formatted into code. The seccomp filter reaches bwrap as an fd (a memfd).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from agentbox.sandbox import seccomp
from agentbox.sandbox.backend import (
    ENV,
    GROUP,
    HOSTS,
    PASSWD,
    SANDBOX_UID,
    SHM_BYTES,
    Check,
    Launch,
    LaunchSpec,
    hard_rlimits,
)

INSIDE_DIR = Path(__file__).resolve().parent / "inside"
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# $1 stage  $2 runtime  $3 inside  $4 data  $5 uid  $6 passwd  $7 group  $8 hosts  $9 n,
# then n cgroup.procs files, then the command.
WRAPPER = r"""
set -eu
stage="$1"; runtime="$2"; inside="$3"; data="$4"; uid="$5"; n="$9"
passwd="$6"; group="$7"; hosts="$8"; shift 9
while [ "$n" -gt 0 ]; do echo "$$" > "$1"; shift; n=$((n - 1)); done
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev agentbox-stage "$stage"
mkdir "$stage/runtime" "$stage/inside" "$stage/data" "$stage/etc"
mount --bind "$runtime" "$stage/runtime"
mount --bind "$inside" "$stage/inside"
mount --bind "$data" "$stage/data"
printf '%s' "$passwd" > "$stage/etc/passwd"
printf '%s' "$group" > "$stage/etc/group"
printf '%s' "$hosts" > "$stage/etc/hosts"
exec env -i PATH=/usr/bin:/bin setpriv --reuid "$uid" --regid "$uid" --clear-groups -- "$@"
"""


class Bubblewrap:
    name = "bubblewrap"
    spare_outer = True  # the outer bwrap reaps the namespace's pid 1; killed together, pid 1 may linger

    def host_pids_max(self, pids_max: int) -> int:
        return pids_max

    def prepare(self, spec: LaunchSpec, privileged: bool, command: Sequence[str] = ()) -> Launch:
        """As Backend.prepare; `command` replaces the executor (the fork server's stub)."""
        command = list(command) or spec.executor_args
        launch = Launch([])
        arch = seccomp.host_arch()
        seccomp_fd = None
        if arch is not None:
            seccomp_fd = _memfd("agentbox-seccomp", seccomp.bpf(arch))
            launch.owned_fds.append(seccomp_fd)
            launch.pass_fds = (seccomp_fd,)
        if privileged:
            stage = str(spec.stage_dir)
            launch.argv = [
                "unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", WRAPPER, "agentbox-wrapper",
                stage, str(spec.runtime_dir), str(INSIDE_DIR), str(spec.data_dir), str(spec.uid),
                PASSWD, GROUP, HOSTS, str(len(spec.cgroup_procs)), *spec.cgroup_procs,
                *_prlimit(spec),
                *bwrap_args(spec, f"{stage}/runtime", f"{stage}/inside", f"{stage}/data", f"{stage}/etc",
                            seccomp_fd),
                *command,
            ]  # fmt: skip
        else:
            # Not root (allow_weak only): bwrap straight from our uid, no staging or uid switch.
            launch.argv = [
                *_prlimit(spec),
                *bwrap_args(
                    spec, str(spec.runtime_dir), str(INSIDE_DIR), str(spec.data_dir), None, seccomp_fd
                ),
                *command,
            ]
        return launch

    def kill_without_cgroup(self, outer_pid: int) -> None:
        # The outer bwrap's one child is its pid namespace's pid 1: when it dies the kernel kills
        # every process in the namespace, and the outer bwrap reaps it and exits. (Killing the outer
        # bwrap instead leaves pid 1 to the host's init, as a zombie until it reaps.)
        try:
            with open(f"/proc/{outer_pid}/task/{outer_pid}/children") as f:
                children = [int(pid) for pid in f.read().split()]
        except OSError:
            children = []
        for pid in children or [outer_pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def release(self, spec: LaunchSpec) -> None:
        return None  # the private mount namespace and staging tmpfs died with the processes

    def sweep(self) -> None:
        return None

    def checks(self) -> list[Check]:
        version = _bwrap_version()
        bwrap = bool(version)
        return [
            ("backend", bwrap, f"bubblewrap: {version}" if version else "bubblewrap (bwrap) not found"),
            ("user namespace", bwrap, "--unshare-user, uid 1000 inside, --disable-userns, --cap-drop ALL"),
            ("pid namespace", bwrap, "--unshare-pid, --die-with-parent"),
            ("net namespace", bwrap, "--unshare-net: only lo, no route out"),
            ("ipc/uts namespaces", bwrap, "--unshare-ipc, --unshare-uts, hostname 'sandbox'"),
            ("read-only root", bwrap, "--remount-ro /; /usr and the runtime bound read-only"),
            ("minimal /etc and /dev", bwrap, "passwd, group, hosts, localtime, fonts; bwrap --dev"),
        ]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bwrap_version() -> str:
    path = shutil.which("bwrap", path=SEARCH_PATH)
    if path is None:
        return ""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def _prlimit(spec: LaunchSpec) -> list[str]:
    # rlimits survive setpriv and bwrap; hard limits, so user code cannot raise them again.
    return ["prlimit", *(f"--{name}={value}" for name, value in hard_rlimits(spec).items()), "--"]


def bwrap_args(
    spec: LaunchSpec, runtime: str, inside: str, data: str, etc: str | None, seccomp_fd: int | None
) -> list[str]:
    args = [
        "bwrap",
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--disable-userns", "--clearenv",
    ]  # fmt: skip
    for key, value in ENV.items():
        args += ["--setenv", key, value]
    args += [
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--dir", "/etc",
    ]  # fmt: skip
    if etc is not None:
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", f"{etc}/{name}", f"/etc/{name}"]
    for name in ("localtime", "mime.types", "fonts"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += [
        "--ro-bind", runtime, "/opt/agentbox/runtime",
        "--ro-bind", inside, "/opt/agentbox/inside",
        "--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
        "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
        "--bind", data, "/mnt/data", "--chdir", "/mnt/data",
        "--remount-ro", "/",
    ]  # fmt: skip
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    return args
