"""`agentbox doctor` and the server's refusal of a weaker sandbox, with the real CLI on a real host.

"A host without cgroups" is made for real: the command runs in a private mount namespace with an
empty tmpfs over /sys/fs/cgroup, so the probe sees exactly what such a machine shows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentbox.sandbox import cgroups
from tests.live_server import AGENTBOX, READY, REPO

pytestmark = pytest.mark.slow

WITHOUT_CGROUPS = [
    "unshare", "--mount", "--propagation", "private", "--",
    "sh", "-c", 'mount -t tmpfs agentbox-no-cgroups /sys/fs/cgroup && exec "$@"', "sh",
]  # fmt: skip


def agentbox(
    tmp_path: Path, *args: str, wrap: list[str] | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AGENTBOX_DATA_DIR": str(tmp_path / "data"),
        "AGENTBOX_API_KEYS": "sk-doctor",
        "AGENTBOX_SANDBOX_RUNTIME": str(REPO / ".runtime"),
        "AGENTBOX_POOL_SIZE": "0",
        **env,
    }
    return subprocess.run(
        [*(wrap or []), str(AGENTBOX), *args],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.cgroup_v2
@pytest.mark.parametrize("backend", ["bubblewrap", "gvisor"])
def test_doctor_lists_every_protection_in_force_on_a_full_host(tmp_path: Path, backend: str) -> None:
    done = agentbox(tmp_path, "doctor", AGENTBOX_SANDBOX=backend)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith("ok ") for line in lines), done.stdout
    names = {line[5:].split(":")[0] for line in lines}
    assert {
        "backend",
        "cgroups",
        "seccomp",
        "memory limit",
        "process limit",
        "cpu limit",
        "kill path",
    } <= names
    version = cgroups.detect().version
    assert f"ok   cgroups: cgroup v{version}" in done.stdout
    assert "memory limit: 1024 MiB cgroup memory(+swap) limit" in done.stdout
    assert f"cpu limit: 1 CPU ({'cpu.max' if version == 2 else 'cpu.cfs_quota_us'})" in done.stdout
    assert ("bubblewrap 0." if backend == "bubblewrap" else "runsc version") in done.stdout


@pytest.mark.parametrize("backend", ["bubblewrap", "gvisor"])
def test_without_cgroups_doctor_misses_only_the_limits_and_exits_1(tmp_path: Path, backend: str) -> None:
    done = agentbox(tmp_path, "doctor", wrap=WITHOUT_CGROUPS, AGENTBOX_SANDBOX=backend)
    assert done.returncode == 1, done.stdout + done.stderr
    missing = [line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("MISSING")]
    assert missing == [
        "MISSING cgroups",
        "MISSING memory limit",
        "MISSING cpu limit",
        "MISSING weak mode allowed",
    ]
    # A root server still gives every session its own uid, filesystem and task cap.
    for kept in ("unprivileged uid: one host uid per live session", "private /mnt/data fs: 512 MiB tmpfs"):
        assert f"ok   {kept}" in done.stdout
    assert "ok   process limit: 256 processes+threads (RLIMIT_NPROC of the session's own uid" in done.stdout
    assert done.stdout.splitlines()[-1] == "User code would run with weaker isolation than configured."


def test_the_server_refuses_a_weaker_sandbox_unless_allowed(tmp_path: Path) -> None:
    refused = agentbox(tmp_path, "serve", "--port", "0", wrap=WITHOUT_CGROUPS)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "agentbox: The sandbox cannot start: no cgroup v2 at /sys/fs/cgroup, and the cgroup v1 "
        "controllers memory/pids/cpu/cpuacct/freezer are not writable under it.",
        "agentbox: AGENTBOX_ALLOW_WEAK_SANDBOX=1 starts it anyway, weaker.",
    ]
    assert not READY.search(refused.stdout)

    # Allowed: it starts (and is stopped by the timeout once it has said so), with one warning line
    # per protection that is not in force.
    with pytest.raises(subprocess.TimeoutExpired) as running:
        agentbox(
            tmp_path,
            "serve",
            "--port",
            "0",
            wrap=WITHOUT_CGROUPS,
            timeout=15,
            AGENTBOX_ALLOW_WEAK_SANDBOX="1",
        )
    printed, warned = (_text(running.value.stdout), _text(running.value.stderr))
    assert READY.search(printed)
    warnings = [line.removeprefix("agentbox: warning: ") for line in warned.splitlines() if "warning" in line]
    assert [w.split(" not in force")[0] for w in warnings] == ["cgroups", "memory limit", "cpu limit"]
    assert "agentbox: warning: memory limit not in force: no cgroup: 1024 MiB not enforced" in warned
    assert "agentbox: warning: cpu limit not in force: no cgroup: 1 CPU not enforced" in warned
    assert "agentbox: warning: cgroups not in force: no cgroup v2 at /sys/fs/cgroup" in warned


def _text(output: bytes | str | None) -> str:
    return output.decode() if isinstance(output, bytes) else output or ""


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("AGENTBOX_SANDBOX", "docker", "Input should be 'bubblewrap' or 'gvisor'"),
        ("AGENTBOX_SESSION_CPUS", "-1", "Input should be greater than or equal to 0"),
        (
            "AGENTBOX_EXEC_TIMEOUT_S",
            "soon",
            "Input should be a valid number, unable to parse string as a number",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, setting: str, value: str, message: str) -> None:
    for command in ("doctor", "serve"):
        done = agentbox(tmp_path, command, **{setting: value})
        assert done.returncode == 2
        assert done.stderr == f"agentbox: {setting}={value!r} is not valid: {message}\n"
