"""Timeouts, kills, crashes, expiry and cleanup (spec/sandbox.md R10-R13, L1-L3, L6-L11), per backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.sandbox import Execution, ExecutionStatus, InputFile
from tests.sandbox_fixtures import Harness, host_uids, worker_uid

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.5
GRACE_S = 1.0


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Harness]:
    harness = Harness(
        tmp_path_factory.mktemp("sessions"),
        backend=backend,
        exec_timeout_s=TIMEOUT_S,
        interrupt_grace_s=GRACE_S,
        uid_base=worker_uid(1_310_000 if backend == "bubblewrap" else 1_410_000),
    )
    yield harness
    harness.close()


def test_r13_blocking_sleep_is_interrupted_state_kept_and_l11_next_cell_runs_at_once(short: Harness) -> None:
    short.run("kept = 'still here'", key="sleep")
    result = short.run("import time; time.sleep(100)", key="sleep")
    assert result.status is ExecutionStatus.TIMEOUT  # interrupted, not killed after the grace
    assert "KeyboardInterrupt" in result.logs
    assert f"Execution interrupted: the cell ran past {TIMEOUT_S:g} s" in result.logs
    # E2B #213: not blocked after an interrupt (how long it takes: bench/, "next cell after an interrupt")
    after = short.run("1 + 1", key="sleep")
    assert after.status is ExecutionStatus.OK and after.logs.strip() == "2"
    assert not after.restarted
    assert short.run("kept", key="sleep").logs.strip() == "'still here'"


def interrupted_at_once(harness: Harness, key: str, code: str) -> Execution:
    """Run code with a long timeout and interrupt it on request as early as the manager allows: the
    interrupt can reach the executor before the cell has even started."""

    async def scenario() -> Execution:
        cell = asyncio.create_task(harness.manager.execute(key, code, timeout_s=60))
        while not await harness.manager.interrupt(key):
            await asyncio.sleep(0)
        return await cell

    return harness.call(scenario())


def test_interrupt_on_request_stops_the_cell_state_kept(short: Harness) -> None:
    short.run("kept = 'still here'", key="stop")
    result = interrupted_at_once(short, "stop", "import time; time.sleep(100)")
    assert result.status is ExecutionStatus.INTERRUPTED  # stopped by the interrupt, not by a kill
    assert result.error is not None and result.error.name == "KeyboardInterrupt"
    assert "Execution interrupted on request" in result.logs
    assert short.run("kept", key="stop").logs.strip() == "'still here'"
    assert not short.manager.has_session("nobody")
    assert short.call(short.manager.interrupt("stop")) is False  # nothing runs now


def test_a_cell_that_ignores_an_interrupt_on_request_is_killed(short: Harness) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('deaf', flush=True)\n"
    code += "time.sleep(100)"
    short.run("1", key="stubborn")

    async def scenario() -> tuple[Execution, float]:
        deaf = asyncio.Event()

        async def heard(stream: str, text: str) -> None:
            deaf.set()  # its first output comes after it ignores SIGINT

        cell = asyncio.create_task(short.manager.execute("stubborn", code, timeout_s=60, on_output=heard))
        await deaf.wait()
        asked = time.monotonic()
        assert await short.manager.interrupt("stubborn")
        return await cell, time.monotonic() - asked

    result, took = short.call(scenario())
    assert result.status is ExecutionStatus.KILLED
    assert result.stdout == "deaf\n"  # what it wrote before it died is kept
    assert f"did not stop within {GRACE_S:g} s of an interrupt" in result.logs
    assert took >= GRACE_S  # the grace was given before the kill
    assert short.run("print('fresh')", key="stubborn").restarted


def test_r13_select_is_interrupted(short: Harness) -> None:
    result = short.run("import select, os\nr, w = os.pipe()\nselect.select([r], [], [])", key="sleep")
    assert result.status is ExecutionStatus.TIMEOUT
    assert "KeyboardInterrupt" in result.logs


def test_r10_cpu_burn_is_interrupted_with_keyboardinterrupt_and_state_kept(short: Harness) -> None:
    short.run("x = 'defined before'", key="sleep")
    result = short.run("while True:\n    pass", key="sleep")
    assert result.status is ExecutionStatus.TIMEOUT
    assert "KeyboardInterrupt" in result.logs
    assert short.run("x", key="sleep").logs.strip() == "'defined before'"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
            marks=pytest.mark.cgroup_v2,
        ),
        "while True:\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        pass",
        "import re\nre.match('(a+)+$', 'a' * 40 + 'b')",
    ],
    ids=["r11_sigint_ignored", "r11_except_baseexception", "r12_catastrophic_regex"],
)
def test_r11_r12_unstoppable_cell_is_killed_and_the_next_cell_is_fresh(short: Harness, code: str) -> None:
    short.run("old = 1\nopen('/mnt/data/keep.txt', 'w').write('k')", key="burn")
    procs_files = short.cgroup_pid_files("burn")
    result = short.run(code, key="burn")
    assert result.status is ExecutionStatus.KILLED
    assert result.logs.endswith(
        f"The session was killed: the cell ran past {TIMEOUT_S:g} s and did not stop within "
        f"{GRACE_S:g} s of an interrupt; variables were lost, files in /mnt/data were kept."
    )
    assert all(p.read_text() == "" for p in procs_files)  # cgroup empty until the lazy restart
    after = short.run("import os\nprint('old' in globals(), os.listdir('/mnt/data'))", key="burn")
    assert after.restarted
    assert after.logs.strip() == "False ['keep.txt']"


@pytest.mark.parametrize(
    "code",
    ["import os; os._exit(3)", "import sys; sys.exit(2)", "import ctypes; ctypes.string_at(0)"],
    ids=["l7_os_exit", "l7_sys_exit", "l9_segfault"],
)
def test_l7_l9_kernel_death_is_killed_and_the_next_cell_works(short: Harness, code: str) -> None:
    short.run("doomed = True", key="die")
    result = short.run(code, key="die")
    assert result.status is ExecutionStatus.KILLED
    assert "variables were lost" in result.logs
    after = short.run("print('doomed' in globals())", key="die")
    assert after.status is ExecutionStatus.OK
    assert after.restarted and after.logs.strip() == "False"


def test_l8_stopped_kernel_is_still_killed(short: Harness) -> None:
    short.run("pass", key="stop")
    result = short.run("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)", key="stop")
    assert result.status is ExecutionStatus.KILLED
    short.run("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)", key="stop")
    short.call(short.manager.close("stop"))
    assert not short.manager.has_session("stop")


def test_l2_background_output_after_the_cell_is_not_the_next_cells(short: Harness) -> None:
    short.run(
        "import threading, time\n"
        "def late():\n    time.sleep(0.3); print('LATE-MARKER')\n"
        "threading.Thread(target=late, daemon=True).start()",
        key="late",
    )
    time.sleep(0.6)
    assert "LATE-MARKER" not in short.run("print('next')", key="late").logs


def test_l6_concurrent_executes_on_one_session_are_serialised(short: Harness) -> None:
    async def both() -> list[str]:
        cells = [f"import time\nprint('{tag}1')\ntime.sleep(0.3)\nprint('{tag}2')" for tag in ("a", "b")]
        results = await asyncio.gather(*(short.manager.execute("serial", c) for c in cells))
        return [r.logs for r in results]

    assert short.call(both()) == ["a1\na2\n", "b1\nb2\n"]


def test_two_threads_at_once_get_two_sessions_that_run_concurrently(short: Harness) -> None:
    short.run("pass", key="par_x")
    short.run("pass", key="par_y")

    async def both() -> list[list[float]]:
        cell = "import time\nbegan = time.time()\ntime.sleep(1)\nprint(began, time.time())"
        results = await asyncio.gather(*(short.manager.execute(k, cell) for k in ("par_x", "par_y")))
        return [[float(t) for t in r.logs.split()] for r in results]

    (x_began, x_ended), (y_began, y_ended) = short.call(both())
    assert max(x_began, y_began) < min(x_ended, y_ended)  # the two cells ran at the same time
    assert short.session_uid("par_x") != short.session_uid("par_y")


@pytest.mark.cgroup_v2
def test_l1_nothing_of_the_session_survives_close(short: Harness) -> None:
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
    assert uid not in host_uids()


@pytest.mark.cgroup_v2
def test_idle_expiry_tears_down_then_restores_files_and_says_state_lost(
    tmp_path_factory: pytest.TempPathFactory, backend: str, tmp_path: Path
) -> None:
    h = Harness(
        tmp_path_factory.mktemp("sessions"),
        backend=backend,
        session_idle_s=1.0,
        uid_base=worker_uid(1_340_000 if backend == "bubblewrap" else 1_440_000),
    )
    try:
        source = tmp_path / "blob"
        source.write_text("restored")
        files = [InputFile(name="in.txt", source=source, file_id="file-1")]
        # L3: a time bomb armed now must not outlive the reap.
        h.run("import threading\nv = 1\nthreading.Timer(60, print, args=('BOOM',)).start()", files=files)
        uid = h.session_uid("thread_a")
        procs_files = h.cgroup_pid_files("thread_a")
        h.wait(1.5)
        for _ in range(50):  # the teardown (gVisor: kill, then `runsc delete`) runs in the reaper task
            if all(not p.exists() for p in procs_files):
                break
            h.wait(0.2)
        assert not h.manager.has_session("thread_a")
        assert uid not in host_uids()
        assert all(not p.exists() for p in procs_files)
        after = h.run("print('v' in globals(), open('/mnt/data/in.txt').read())", files=files)
        assert after.restarted
        assert after.state_lost_reason == "the session was idle for more than 1 s"
        assert after.logs.strip() == "False restored"
    finally:
        h.close()


def test_max_age_expiry_even_when_never_idle(tmp_path_factory: pytest.TempPathFactory, backend: str) -> None:
    h = Harness(
        tmp_path_factory.mktemp("sessions"),
        backend=backend,
        session_idle_s=60.0,
        session_max_s=2.0,
        uid_base=1_350_000 if backend == "bubblewrap" else 1_450_000,
    )
    try:
        h.run("v = 1")
        reasons = []
        for _ in range(12):
            h.wait(0.5)
            result = h.run("print('v' in globals())")
            if result.restarted:
                reasons.append(result.state_lost_reason)
                break
        assert reasons == ["the session reached its maximum age of 2 s"]
    finally:
        h.close()


@pytest.mark.cgroup_v2
def test_l10_a_restarted_server_sweeps_what_a_crashed_one_left(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> None:
    sessions_dir = tmp_path_factory.mktemp("sessions")
    uid_base = 1_320_000 if backend == "bubblewrap" else 1_420_000
    crashed = Harness(sessions_dir, backend=backend, uid_base=uid_base)
    crashed.run("open('/mnt/data/left.txt', 'w').write('x')", key="orphan")
    uid = crashed.session_uid("orphan")
    procs_files = crashed.cgroup_pid_files("orphan")
    data_dir = crashed.data_dir("orphan")
    runsc_root = crashed.config.runsc_root / crashed.manager._cgroup_group
    restarted = Harness(sessions_dir, backend=backend, uid_base=uid_base)  # start() sweeps first
    try:
        assert not data_dir.exists()
        assert all(not p.exists() for p in procs_files)
        assert uid not in host_uids()
        assert not runsc_root.exists()
        assert not (sessions_dir / ".gvisor").exists()
    finally:
        restarted.close()
        crashed.close()
