"""`agentbox doctor` and the server's refusal of a weaker sandbox, with the real CLI on a real host.

"A host without cgroups" is made for real: the command runs in a private mount namespace with an
empty tmpfs over /sys/fs/cgroup, so the probe sees exactly what such a machine shows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("backend", ["bubblewrap", "gvisor"])
def test_doctor_lists_every_protection_in_force_on_a_full_host(tmp_path: Path, backend: str) -> None:
    done = agentbox(tmp_path, "doctor", AGENTBOX_SANDBOX=backend)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(line.startswith("ok ") for line in lines), done.stdout
    names = {line[5:].split(":")[0] for line in lines}
    assert {"backend", "seccomp", "memory limit", "process limit", "cpu limit", "kill path"} <= names
    assert "memory limit: 1024 MiB cgroup memory(+swap) limit" in done.stdout
    assert "cpu limit: 1 CPU" in done.stdout  # the default quota
    assert ("bubblewrap 0." if backend == "bubblewrap" else "runsc version") in done.stdout


def test_without_cgroups_doctor_says_what_is_missing_and_exits_1(tmp_path: Path) -> None:
    done = agentbox(tmp_path, "doctor", wrap=WITHOUT_CGROUPS)
    assert done.returncode == 1, done.stdout + done.stderr
    missing = [line for line in done.stdout.splitlines() if line.startswith("MISSING")]
    assert [m.split(":")[0] for m in missing] == [
        "MISSING memory limit",
        "MISSING process limit",
        "MISSING cpu limit",
        "MISSING kill path",
        "MISSING weak mode allowed",
    ]
    assert done.stdout.splitlines()[-1] == "User code would run with weaker isolation than configured."


def test_the_server_refuses_a_weaker_sandbox_unless_allowed(tmp_path: Path) -> None:
    refused = agentbox(tmp_path, "serve", "--port", "0", wrap=WITHOUT_CGROUPS)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "agentbox: The sandbox cannot start: cgroup v1 memory/pids/cpu/cpuacct/freezer controllers are "
        "not writable in /sys/fs/cgroup.",
        "agentbox: AGENTBOX_ALLOW_WEAK_SANDBOX=1 starts it anyway, weaker.",
    ]
    assert not READY.search(refused.stdout)

    # Allowed: it starts (and is stopped by the timeout once it has said so).
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
    printed = running.value.stdout
    assert READY.search(printed.decode() if isinstance(printed, bytes) else printed or "")


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
