"""A root server on a host without usable cgroups (allow_weak): no user code runs as host root.

The host is made for real: the sessions run in a child process under a private mount namespace
with an empty tmpfs over /sys/fs/cgroup (tests/security/weak_driver.py), so the probe sees exactly
what such a machine shows. Each session still gets its own unprivileged host uid, its sized tmpfs
and RLIMIT_NPROC on that uid; only the cgroup limits are missing, and doctor says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import REPO
from tests.security.test_doctor import WITHOUT_CGROUPS

pytestmark = pytest.mark.slow


def _weak_sessions(tmp_path: Path, backend: str) -> dict[str, object]:
    done = subprocess.run(
        [*WITHOUT_CGROUPS, sys.executable, "-m", "tests.security.weak_driver", str(tmp_path / "s"), backend],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    facts: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return facts


def test_weak_mode_cells_run_as_the_sessions_own_unprivileged_host_uid(tmp_path: Path, backend: str) -> None:
    facts = _weak_sessions(tmp_path, backend)
    session_uid = facts["session_uid"]
    assert isinstance(session_uid, int) and session_uid >= 1_360_000
    if backend == "bubblewrap":
        assert facts["uid_inside"] == "1000"  # mapped to session_uid
        # The cell's child and the kernel that started it, as the host sees them.
        assert facts["sleepers"] == [{"uid": session_uid, "parent_uid": session_uid}]
    else:
        assert facts["uid_inside"] == str(session_uid)  # gVisor: no uid map, the host uid itself
        assert facts["sleepers"] == []  # inside gVisor's kernel, no host process
    missing = [name for name, ok, _ in facts["report"] if not ok]  # type: ignore[attr-defined]
    assert missing == ["cgroups", "memory limit", "cpu limit"]
    # RLIMIT_NPROC on the session's own uid (gVisor: inside) still stops a fork bomb.
    name, made = str(facts["bomb"]).split()[-2:]
    assert name == "EAGAIN" and int(made) < 64
    # Without a cgroup, the kill path is the sandbox's own: nothing a session started survives.
    assert facts["sleepers_after_close"] == []
    assert facts["left_after_close"] == []
