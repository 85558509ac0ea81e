"""Timeouts, kills, crashes and cleanup (spec/sandbox.md R10-R13, L1, L7, L9, L11)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from agentbox.sandbox import ExecutionStatus
from tests.sandbox_fixtures import Harness

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0
GRACE_S = 1.0


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(
        tmp_path_factory.mktemp("sessions"),
        exec_timeout_s=TIMEOUT_S,
        interrupt_grace_s=GRACE_S,
        uid_base=1_310_000,
    )
    yield harness
    harness.close()


def test_blocking_sleep_is_interrupted_and_state_kept(short: Harness) -> None:
    short.run("kept = 'still here'", key="sleep")
    began = time.monotonic()
    result = short.run("import time; time.sleep(100)", key="sleep")
    assert result.status is ExecutionStatus.TIMEOUT
    assert "KeyboardInterrupt" in result.logs
    assert time.monotonic() - began < TIMEOUT_S + GRACE_S + 2
    assert short.run("kept", key="sleep").logs.strip() == "'still here'"
    after = short.run("1 + 1", key="sleep")  # E2B #213: not blocked after an interrupt
    assert after.status is ExecutionStatus.OK and after.logs.strip() == "2"
    assert not after.restarted


def test_sigint_ignoring_loop_is_killed_and_the_next_cell_is_fresh(short: Harness) -> None:
    short.run("old = 1\nopen('/mnt/data/keep.txt', 'w').write('k')", key="burn")
    began = time.monotonic()
    result = short.run(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", key="burn"
    )
    assert result.status is ExecutionStatus.KILLED
    assert "variables were lost" in result.logs
    assert time.monotonic() - began < TIMEOUT_S + GRACE_S + 2
    after = short.run("import os\nprint('old' in globals(), os.listdir('/mnt/data'))", key="burn")
    assert after.restarted
    assert after.logs.strip() == "False ['keep.txt']"


@pytest.mark.parametrize(
    "code",
    ["import os; os._exit(3)", "import sys; sys.exit(2)", "import ctypes; ctypes.string_at(0)"],
    ids=["os_exit", "sys_exit", "segfault"],
)
def test_kernel_death_is_killed_and_the_next_cell_works(short: Harness, code: str) -> None:
    short.run("doomed = True", key="die")
    result = short.run(code, key="die")
    assert result.status is ExecutionStatus.KILLED
    assert "variables were lost" in result.logs
    after = short.run("print('doomed' in globals())", key="die")
    assert after.status is ExecutionStatus.OK
    assert after.restarted and after.logs.strip() == "False"


def test_nothing_of_the_session_survives_close(short: Harness) -> None:
    short.run(
        "import subprocess\n"
        "p = subprocess.Popen(['/bin/sh', '-c', 'sleep 1000 & sleep 1000'], start_new_session=True)",
        key="daemon",
    )
    uid = short.session_uid("daemon")
    procs_files = short.cgroup_pid_files("daemon")
    data_dir = short.data_dir("daemon")
    assert len(short.session_pids("daemon")) >= 3
    short.call(short.manager.close("daemon"))
    assert not short.manager.has_session("daemon")
    assert not data_dir.exists()
    assert all(not p.exists() for p in procs_files)
    assert uid not in _host_uids()


def _host_uids() -> set[int]:
    uids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    uids.add(int(next(line for line in f if line.startswith("Uid:")).split()[1]))
            except (OSError, StopIteration):
                continue
    return uids


def test_a_restarted_server_sweeps_what_a_crashed_one_left(tmp_path_factory: pytest.TempPathFactory) -> None:
    sessions_dir = tmp_path_factory.mktemp("sessions")
    crashed = Harness(sessions_dir, uid_base=1_320_000)
    crashed.run("open('/mnt/data/left.txt', 'w').write('x')", key="orphan")
    uid = crashed.session_uid("orphan")
    procs_files = crashed.cgroup_pid_files("orphan")
    data_dir = crashed.data_dir("orphan")
    restarted = Harness(sessions_dir, uid_base=1_320_000)  # start() sweeps before any session exists
    try:
        assert not data_dir.exists()
        assert all(not p.exists() for p in procs_files)
        assert uid not in _host_uids()
    finally:
        restarted.close()
        crashed.close()
