"""The gVisor backend: `runsc run` with an OCI bundle written per kernel (never `runsc do`).

    sh (joins the session cgroups) ─exec▶ runsc --network=none --oci-seccomp run --bundle B ID
        └─ sentry + gofer (host) ── executor (inside gVisor's kernel, uid 1000)

The bundle's root is a near-empty read-only directory (symlinks into /usr); /usr, the runtime and
the executor are bound read-only, /tmp is a sized tmpfs, /mnt/data the session's own directory.
Resources stay with the manager's cgroups (no cgroupsPath: runsc creates none); the user-visible
process cap is RLIMIT_NPROC inside, because each sandbox process costs several host tasks under the
ptrace platform and a tight host pids.max kills the Sentry itself (spec/sandbox.md §3.5).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from agentbox.errors import SandboxUnavailable
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
)
from agentbox.sandbox.bubblewrap import INSIDE_DIR, SEARCH_PATH

HOST_TASKS_PER_PROCESS = 8
"""Host tasks (Sentry threads, ptrace stubs) one sandbox process may cost; sizes the host pids.max."""
HOST_PIDS_MIN = 1024
ROOTFS_DIRS = ("usr", "etc", "tmp", "proc", "dev", "mnt/data", "opt/agentbox/runtime", "opt/agentbox/inside")
RUNSC_FLAGS = ("--network=none", "--platform=ptrace", "--oci-seccomp", "--host-uds=none", "--ignore-cgroups")

# $1 n, then n cgroup.procs files, then the command.
WRAPPER = r"""
set -eu
n="$1"; shift
while [ "$n" -gt 0 ]; do echo "$$" > "$1"; shift; n=$((n - 1)); done
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
"""


class GVisor:
    name = "gvisor"
    spare_outer = False  # `runsc run` exits once its sandbox is gone; killing all at once is fine

    def __init__(self, state_root: Path, bundles_dir: Path) -> None:
        self._state_root = state_root  # runsc --root: container records of this manager only
        self._bundles = bundles_dir

    def host_pids_max(self, pids_max: int) -> int:
        return max(HOST_PIDS_MIN, pids_max * HOST_TASKS_PER_PROCESS)

    def container_id(self, spec: LaunchSpec) -> str:
        return f"agentbox-{spec.name}-{spec.generation}"

    def prepare(self, spec: LaunchSpec, privileged: bool) -> Launch:
        runsc = shutil.which("runsc", path=SEARCH_PATH)
        if not privileged or runsc is None:
            raise SandboxUnavailable("the gVisor backend needs root and runsc (apt-get install runsc)")
        bundle = self._bundles / self.container_id(spec)
        _write_bundle(bundle, spec)
        self._state_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [
            "/bin/sh", "-c", WRAPPER, "agentbox-gvisor",
            str(len(spec.cgroup_procs)), *spec.cgroup_procs,
            runsc, "--root", str(self._state_root), *RUNSC_FLAGS,
            "run", "--bundle", str(bundle), self.container_id(spec),
        ]  # fmt: skip
        return Launch(argv)

    def kill_without_cgroup(self, outer_pid: int) -> None:
        # runsc starts its sandbox and gofer with a parent-death SIGKILL: they end with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(outer_pid, signal.SIGKILL)

    def release(self, spec: LaunchSpec) -> None:
        self._forget(self.container_id(spec))
        shutil.rmtree(self._bundles / self.container_id(spec), ignore_errors=True)

    def sweep(self) -> None:
        shutil.rmtree(self._state_root, ignore_errors=True)
        shutil.rmtree(self._bundles, ignore_errors=True)

    def _forget(self, container_id: str) -> None:
        """Drop runsc's record of a container whose processes the cgroup kill already ended.

        `runsc delete --force` would do the same but spends ~2 s waiting on the dead sandbox;
        the record is only `<id>_sandbox:<id>.state` and its `.lock` under our private --root.
        """
        with contextlib.suppress(OSError):
            for entry in self._state_root.iterdir():
                if entry.name.startswith(f"{container_id}_"):
                    entry.unlink(missing_ok=True)

    def checks(self) -> list[Check]:
        runsc = shutil.which("runsc", path=SEARCH_PATH)
        version = ""
        if runsc is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                done = subprocess.run([runsc, "--version"], capture_output=True, text=True, timeout=10)
                version = done.stdout.splitlines()[0] if done.stdout else ""
        ok = bool(version)
        return [
            ("backend", ok, f"gVisor: {version}, runsc run + OCI bundle" if ok else "runsc not found"),
            ("application kernel", ok, "syscalls served by gVisor's Sentry (ptrace platform)"),
            ("net namespace", ok, "--network=none: only lo, no route out"),
            ("read-only root", ok, "bundle root read-only, /usr and the runtime bound read-only, /tmp sized"),
            ("minimal /etc and /dev", ok, "passwd, group, hosts, localtime, fonts; gVisor's own /dev"),
            ("host unix sockets", ok, "--host-uds=none"),
        ]


def _write_bundle(bundle: Path, spec: LaunchSpec) -> None:
    shutil.rmtree(bundle, ignore_errors=True)
    rootfs = bundle / "rootfs"
    for sub in ROOTFS_DIRS:
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    for link in ("lib", "lib64", "bin", "sbin"):
        (rootfs / link).symlink_to(f"usr/{link}")
    # The user inside is the session's host uid: gVisor has no uid mapping, and /mnt/data (host
    # side) belongs to that uid, so files keep the same per-session owner as under bubblewrap.
    passwd = PASSWD.replace(f":{SANDBOX_UID}:{SANDBOX_UID}:", f":{spec.uid}:{spec.uid}:")
    group = GROUP.replace(f":{SANDBOX_UID}:", f":{spec.uid}:")
    for name, text in (("passwd", passwd), ("group", group), ("hosts", HOSTS)):
        (rootfs / "etc" / name).write_text(text)
    extra: list[dict[str, Any]] = []
    for name in ("localtime", "mime.types", "fonts"):
        host = Path("/etc") / name
        if not host.exists():
            continue
        if host.is_dir():
            (rootfs / "etc" / name).mkdir()
        else:
            (rootfs / "etc" / name).touch()
        extra.append(_bind(str(host.resolve()), f"/etc/{name}", ro=True))
    os.chmod(bundle, 0o700)
    config = _config(spec, extra)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))


def _bind(source: str, destination: str, ro: bool) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev"],
    }


def _config(spec: LaunchSpec, extra_mounts: list[dict[str, Any]]) -> dict[str, Any]:
    def rlimit(kind: str, value: int) -> dict[str, Any]:
        return {"type": kind, "hard": value, "soft": value}

    arch = seccomp.host_arch()
    cap_sets = ("bounding", "effective", "inheritable", "permitted", "ambient")
    caps: dict[str, list[str]] = {k: [] for k in cap_sets}
    linux: dict[str, Any] = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/kcore", "/proc/sysrq-trigger"],
        "readonlyPaths": ["/proc/sys", "/proc/irq", "/proc/bus"],
    }
    if arch is not None:
        linux["seccomp"] = seccomp.oci(arch)
    return {
        "ociVersion": "1.0.0",
        "process": {
            "terminal": False,
            "user": {"uid": spec.uid, "gid": spec.uid, "additionalGids": []},
            "args": spec.executor_args,
            "env": [f"{k}={v}" for k, v in ENV.items()],
            "cwd": "/mnt/data",
            "capabilities": caps,
            "rlimits": [
                rlimit("RLIMIT_NOFILE", spec.nofile),
                rlimit("RLIMIT_NPROC", spec.nproc),
                rlimit("RLIMIT_FSIZE", spec.fsize_bytes),
                rlimit("RLIMIT_CORE", 0),
            ],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {  # POSIX semaphores (multiprocessing locks) live here
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "nodev", "noexec", "mode=1777", f"size={SHM_BYTES}"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", f"size={spec.tmp_bytes}"],
            },
            _bind("/usr", "/usr", ro=True),
            _bind(str(spec.runtime_dir), "/opt/agentbox/runtime", ro=True),
            _bind(str(INSIDE_DIR), "/opt/agentbox/inside", ro=True),
            *extra_mounts,
            _bind(str(spec.data_dir), "/mnt/data", ro=False),
        ],
        "linux": linux,
    }
