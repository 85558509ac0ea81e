"""A session uid is never handed out while a process of an earlier session with it is still alive.

The kill of a session cgroup waits a few seconds for it to empty. A process it cannot end (asleep
uninterruptibly on a hung filesystem: here a FUSE filesystem that never answers, see stuck_fuse.py)
keeps the session's slot quarantined: the next sessions get other uids, and the slot comes back
only once the cgroup is empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.errors import SandboxUnavailable
from tests.sandbox_fixtures import Harness, worker_uid
from tests.security.stuck_fuse import StuckFuse

pytestmark = [pytest.mark.slow, pytest.mark.cgroup_v2]
UID_BASE = worker_uid(1_390_000)


@pytest.fixture
def stuck_fs(tmp_path: Path) -> Iterator[StuckFuse]:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse: the test's hung filesystem needs FUSE")
    fs = StuckFuse(tmp_path / "fuse")
    yield fs
    fs.close()


def _stuck_process(fs: StuckFuse, uid: int, cgroup_procs: list[Path]) -> subprocess.Popen[bytes]:
    """A process of the session's uid and cgroup, blocked on a lookup the filesystem never answers."""
    code = (
        "import os, sys\n"
        f"fd = os.open({str(fs.mount_point)!r}, os.O_RDONLY | os.O_DIRECTORY)\n"
        f"os.setgroups([]); os.setgid({uid}); os.setuid({uid})\n"
        "sys.stdin.readline()\n"  # joined the session's cgroup: go
        "os.stat('stuck', dir_fd=fd)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    for procs in cgroup_procs:
        procs.write_text(str(process.pid))
    assert process.stdin is not None
    process.stdin.write(b"go\n")
    process.stdin.close()
    assert fs.lookup_seen.wait(30), "the process never reached the filesystem"
    return process


def _wait_released(harness: Harness) -> None:
    for _ in range(120):  # the reaper's next retry finds the cgroup empty
        if not harness.manager.pool_statistics()["quarantined"]:
            return
        harness.wait(0.5)
    raise AssertionError("the quarantined uid was never released")


def _uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def test_a_uid_whose_session_would_not_die_is_not_reused_until_it_has(
    tmp_path_factory: pytest.TempPathFactory, stuck_fs: StuckFuse
) -> None:
    harness = Harness(
        tmp_path_factory.mktemp("sessions"), backend="bubblewrap", uid_base=UID_BASE, max_sessions=2
    )
    stuck: subprocess.Popen[bytes] | None = None
    try:
        harness.run("x = 1", key="hung")
        assert harness.session_uid("hung") == UID_BASE
        stuck = _stuck_process(stuck_fs, UID_BASE, harness.cgroup_pid_files("hung"))

        harness.call(harness.manager.close("hung"))  # the kill cannot end the stuck process
        assert stuck.poll() is None and _uid(stuck.pid) == UID_BASE
        assert harness.manager.pool_statistics()["quarantined"] == 1
        assert harness.run("print('other')", key="next").logs.strip() == "other"
        assert harness.session_uid("next") == UID_BASE + 1, "a uid with a live process was reused"
        with pytest.raises(SandboxUnavailable, match="held until processes that would not die have exited"):
            harness.run("print('third')", key="third")
        harness.wait(5)  # the reaper retries meanwhile; the process still cannot die
        assert harness.manager.pool_statistics()["quarantined"] == 1

        stuck_fs.release()  # the filesystem answers at last: the pending SIGKILL ends the process
        assert stuck.wait(30) == -9
        _wait_released(harness)
        assert harness.run("print('third')", key="third").logs.strip() == "third"
        assert harness.session_uid("third") == UID_BASE
    finally:
        stuck_fs.release()
        if stuck is not None:
            stuck.kill()
            stuck.wait(30)
        harness.close()


def test_a_restarted_server_holds_the_uid_of_a_crashed_ones_session_that_would_not_die(
    tmp_path_factory: pytest.TempPathFactory, stuck_fs: StuckFuse
) -> None:
    sessions_dir = tmp_path_factory.mktemp("sessions")
    crashed = Harness(sessions_dir, backend="bubblewrap", uid_base=UID_BASE, max_sessions=2)
    restarted: Harness | None = None
    stuck: subprocess.Popen[bytes] | None = None
    try:
        crashed.run("x = 1", key="hung")
        stuck = _stuck_process(stuck_fs, UID_BASE, crashed.cgroup_pid_files("hung"))
        # start() sweeps what the crashed server left: everything dies but the stuck process.
        restarted = Harness(sessions_dir, backend="bubblewrap", uid_base=UID_BASE, max_sessions=2)
        assert stuck.poll() is None
        assert restarted.manager.pool_statistics()["quarantined"] == 1
        restarted.run("x = 1", key="next")
        assert restarted.session_uid("next") == UID_BASE + 1, "a uid with a live process was reused"

        stuck_fs.release()
        assert stuck.wait(30) == -9
        _wait_released(restarted)
        restarted.run("x = 1", key="third")
        assert restarted.session_uid("third") == UID_BASE
    finally:
        stuck_fs.release()
        if stuck is not None:
            stuck.kill()
            stuck.wait(30)
        if restarted is not None:
            restarted.close()
        crashed.close()
