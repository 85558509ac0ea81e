"""The argv that starts one kernel: private mount ns → staging → unprivileged uid → bwrap → executor.

Why the detour as root: bwrap running as the session's unprivileged uid cannot traverse a project
under a 0700 home, so a root shell in a private mount namespace first bind-mounts the runtime,
the executor source and the session's data dir into a small staging tmpfs (invisible to the host),
then drops to the uid. The shell script is a constant; everything variable is a positional
argument, never text formatted into code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INSIDE_DIR = Path(__file__).resolve().parent / "inside"
SANDBOX_UID = 1000
ENV = {
    "PATH": "/opt/agentbox/runtime/bin:/usr/bin:/bin",
    "HOME": "/mnt/data",
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/mpl",
    "XDG_CACHE_HOME": "/tmp/cache",  # keeps font caches out of the user's /mnt/data
}
"""The sandbox's whole environment (bwrap adds PWD)."""

# $1 stage  $2 runtime  $3 inside  $4 data  $5 uid  $6 n, then n cgroup.procs files, then the command.
WRAPPER = r"""
set -eu
stage="$1"; runtime="$2"; inside="$3"; data="$4"; uid="$5"; n="$6"; shift 6
while [ "$n" -gt 0 ]; do echo "$$" > "$1"; shift; n=$((n - 1)); done
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev agentbox-stage "$stage"
mkdir "$stage/runtime" "$stage/inside" "$stage/data" "$stage/etc"
mount --bind "$runtime" "$stage/runtime"
mount --bind "$inside" "$stage/inside"
mount --bind "$data" "$stage/data"
printf 'root:x:0:0::/:/usr/sbin/nologin\n' > "$stage/etc/passwd"
printf 'sandbox:x:1000:1000:sandbox:/mnt/data:/bin/sh\n' >> "$stage/etc/passwd"
printf 'nobody:x:65534:65534::/:/usr/sbin/nologin\n' >> "$stage/etc/passwd"
printf 'root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n' > "$stage/etc/group"
printf '127.0.0.1 localhost sandbox\n::1 localhost\n' > "$stage/etc/hosts"
exec env -i PATH=/usr/bin:/bin setpriv --reuid "$uid" --regid "$uid" --clear-groups -- "$@"
"""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    stage_dir: Path
    runtime_dir: Path
    data_dir: Path
    uid: int
    cgroup_procs: tuple[str, ...]
    tmp_bytes: int
    fsize_bytes: int
    nproc: int
    output_limit: int
    max_images: int


def command(spec: LaunchSpec) -> list[str]:
    """argv for asyncio.create_subprocess_exec (as root)."""
    stage = str(spec.stage_dir)
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", WRAPPER, "agentbox-wrapper",
        stage, str(spec.runtime_dir), str(INSIDE_DIR), str(spec.data_dir), str(spec.uid),
        str(len(spec.cgroup_procs)), *spec.cgroup_procs,
        *_prlimit(spec),
        *bwrap_args(spec, f"{stage}/runtime", f"{stage}/inside", f"{stage}/data", f"{stage}/etc"),
    ]  # fmt: skip


def weak_command(spec: LaunchSpec) -> list[str]:
    """argv when not root (allow_weak only): bwrap straight from our uid, no staging or uid switch."""
    return [
        *_prlimit(spec),
        *bwrap_args(spec, str(spec.runtime_dir), str(INSIDE_DIR), str(spec.data_dir), None),
    ]


def _prlimit(spec: LaunchSpec) -> list[str]:
    # rlimits survive setpriv and bwrap; hard limits, so user code cannot raise them again.
    return [
        "prlimit", "--core=0", "--nofile=1024", f"--fsize={spec.fsize_bytes}", f"--nproc={spec.nproc}", "--",
    ]  # fmt: skip


def bwrap_args(spec: LaunchSpec, runtime: str, inside: str, data: str, etc: str | None) -> list[str]:
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
        "--proc", "/proc", "--dev", "/dev",
        "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
        "--bind", data, "/mnt/data", "--chdir", "/mnt/data",
        "--remount-ro", "/",
        "/opt/agentbox/runtime/bin/python3", "-E", "-s", "-B", "/opt/agentbox/inside/executor.py",
        str(spec.output_limit), str(spec.max_images),
    ]  # fmt: skip
    return args
