"""Resource bombs (spec/sandbox.md §2 R1-R10), once per backend, after the isolation tests.

Every bomb is bounded in the test itself (a cap on forks, threads, bytes, files), so a build with a
broken limit fails the test instead of taking the machine down. The harness limits are small:
256 MiB, 64 tasks, 0.5 CPU, 16 MiB /tmp, 32 MiB and 2000 inodes of /mnt/data, 128 open files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from agentbox.sandbox import ExecutionStatus
from agentbox.sandbox.kernel import OOM_MESSAGE
from tests.sandbox_fixtures import FORK_BOMB, Harness, cell_seconds, host_pids, worker_uid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Harness]:
    uid_base = worker_uid(1_330_000 if backend == "bubblewrap" else 1_430_000)
    harness = Harness(
        tmp_path_factory.mktemp("sessions"),
        backend=backend,
        uid_base=uid_base,
        exec_timeout_s=cell_seconds(4.0),
    )
    yield harness
    harness.close()


def _close_and_check_gone(h: Harness, key: str, before: set[int]) -> None:
    procs_files = h.cgroup_pid_files(key)
    h.call(h.manager.close(key))
    assert all(not p.exists() for p in procs_files)
    assert not (host_pids() - before) or all(not _in_session(p, procs_files) for p in host_pids() - before)


def _in_session(pid: int, procs_files: list[object]) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return any(str(p).split("/")[-2] in f.read() for p in procs_files)  # type: ignore[attr-defined]
    except OSError:
        return False


@pytest.mark.cgroup_v2
def test_r1_fork_bomb_stops_at_the_task_limit_and_dies_with_the_session(bombs: Harness) -> None:
    before = host_pids()
    result = bombs.run(FORK_BOMB, key="fork")
    if bombs.backend == "gvisor" and result.oom:
        # Differs under gVisor: forked copies of the kernel count in full against the sandbox's one
        # memory file, so the memory cgroup may kill the whole sandbox before RLIMIT_NPROC bites.
        assert result.status is ExecutionStatus.KILLED and result.logs.endswith(OOM_MESSAGE)
        _close_and_check_gone(bombs, "fork", before)
        return
    name, made = result.logs.split()[-2:]
    assert name == "EAGAIN", result.logs
    # RLIMIT_NPROC of the session's own uid (gVisor: inside) or pids.max, whichever bites first
    assert int(made) < bombs.config.pids_max
    assert bombs.run("print('usable')", key="fork").logs.strip() == "usable"
    _close_and_check_gone(bombs, "fork", before)


def test_r2_shell_fork_bomb_is_contained(bombs: Harness) -> None:
    before = host_pids()
    code = (
        "import subprocess\n"
        "try:\n"
        "    subprocess.run(['/bin/bash', '-c', 'ulimit -u 64; :(){ :|:& };:'], timeout=2,\n"
        "                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "except subprocess.TimeoutExpired:\n"
        "    pass\n"
        "print('cell returned')\n"
    )
    result = bombs.run(code, key="shellbomb")
    assert result.status in (ExecutionStatus.OK, ExecutionStatus.TIMEOUT, ExecutionStatus.KILLED)
    cgroup = bombs.cgroup("shellbomb")
    assert cgroup.pids_current() <= cgroup.pids_limit()
    if bombs.backend == "bubblewrap":  # gVisor's host cap is larger: its Sentry's threads count there
        assert cgroup.pids_limit() == bombs.config.pids_max
    _close_and_check_gone(bombs, "shellbomb", before)
    assert bombs.run("print('server fine')", key="after_bomb").logs.strip() == "server fine"


def test_r3_thread_bomb_gets_cant_start_new_thread_and_the_kernel_lives(bombs: Harness) -> None:
    code = (
        "import threading, time\n"
        "stop = threading.Event()\n"
        "threads = []\n"
        "try:\n"
        "    for _ in range(1000):\n"
        "        t = threading.Thread(target=stop.wait); t.start(); threads.append(t)\n"
        "except RuntimeError as e:\n"
        "    print(e, len(threads))\n"
        "stop.set()\n"
        "for t in threads:\n"
        "    t.join()\n"
    )
    out = bombs.run(code, key="threads").logs.strip()
    message, count = out.rsplit(" ", 1)
    assert message == "can't start new thread"
    assert int(count) < bombs.config.pids_max
    assert bombs.run("print('usable')", key="threads").logs.strip() == "usable"


@pytest.mark.cgroup_v2
def test_r4_memory_bomb_is_an_oom_kill_reported_and_restarted(bombs: Harness) -> None:
    bombs.run("kept = 1\nopen('/mnt/data/keep.txt', 'w').write('k')", key="mem")
    code = (
        "chunks = []\n"
        "for _ in range(1024):\n"  # at most 1 GiB, four times the limit
        "    chunks.append(bytearray(1 << 20))\n"
        "print('survived')\n"
    )
    result = bombs.run(code, key="mem")
    assert result.status is ExecutionStatus.KILLED
    assert result.oom
    assert result.logs.endswith(OOM_MESSAGE)
    assert bombs.cgroup("mem").oom_kills() > 0  # memory.oom_control (v1) or memory.events (v2)
    after = bombs.run("import os\nprint('kept' in globals(), os.listdir('/mnt/data'))", key="mem")
    assert after.restarted
    assert after.state_lost_reason == OOM_MESSAGE
    assert after.logs.strip() == "False ['keep.txt']"


def test_r5_tmp_fills_with_enospc_not_oom(bombs: Harness) -> None:
    code = (
        "import errno\n"
        "try:\n"
        "    with open('/tmp/fill', 'wb') as f:\n"
        "        for _ in range(64):\n"  # 64 MiB at most; /tmp is 16 MiB
        "            f.write(b'x' * (1 << 20)); f.flush()\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "import os; os.remove('/tmp/fill')\n"
    )
    result = bombs.run(code, key="tmpfill")
    assert result.status is ExecutionStatus.OK
    assert result.logs.strip() == "ENOSPC"
    assert not result.oom


def test_r19_dev_shm_fills_with_enospc_at_its_size_and_multiprocessing_still_works(bombs: Harness) -> None:
    # Not in the catalogue: /dev/shm is a second tmpfs user code can write to (bwrap's --dev leaves
    # it bounded only by the memory limit, so filling it was an OOM kill of the session).
    code = (
        "import errno, os\n"
        "n = 0\n"
        "try:\n"
        "    for i in range(16):\n"  # 256 MiB at most, in files under RLIMIT_FSIZE; /dev/shm is 64 MiB
        "        with open(f'/dev/shm/f{i}', 'wb') as f:\n"
        "            for _ in range(16): f.write(b'x' * (1 << 20)); f.flush()\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno], n)\n"
        "for name in os.listdir('/dev/shm'):\n"
        "    os.remove('/dev/shm/' + name)\n"
    )
    result = bombs.run("kept = 1", key="shm")
    result = bombs.run(code, key="shm")
    assert result.status is ExecutionStatus.OK and not result.oom, result.logs
    name, files = result.logs.split()
    assert name == "ENOSPC"
    assert int(files) <= 4  # 64 MiB in 16 MiB files
    pool = "import multiprocessing as mp\nwith mp.Pool(2) as p:\n    print(kept, p.map(abs, [-1, -2, -3]))"
    assert bombs.run(pool, key="shm").logs.strip() == "1 [1, 2, 3]"


def test_r6_data_dir_fills_with_enospc_at_the_quota(bombs: Harness) -> None:
    code = (
        "import errno, os\n"
        "n = 0\n"
        "try:\n"
        f"    for i in range({bombs.config.session_disk_mb + 16}):\n"
        "        with open(f'/mnt/data/f{i}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno], n)\n"
        "for name in os.listdir('/mnt/data'):\n"
        "    os.remove('/mnt/data/' + name)\n"
    )
    name, count = bombs.run(code, key="disk").logs.split()
    assert name == "ENOSPC"
    assert int(count) <= bombs.config.session_disk_mb


def test_r7_huge_or_sparse_file_is_refused_by_the_file_size_limit(bombs: Harness) -> None:
    code = (
        "import errno, os, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "try:\n"
        "    with open('/mnt/data/sparse', 'wb') as f:\n"
        "        os.truncate(f.fileno(), 1 << 40)\n"
        "    print('made', os.stat('/mnt/data/sparse').st_blocks)\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    assert bombs.run(code, key="disk").logs.strip() == "EFBIG"


def test_r8_inode_exhaustion_stops_at_the_session_limit(bombs: Harness) -> None:
    code = (
        "import errno, os\n"
        "os.mkdir('/mnt/data/many')\n"
        "n = 0\n"
        "try:\n"
        f"    for i in range({bombs.config.session_inodes * 3}):\n"
        "        open(f'/mnt/data/many/{i}', 'w').close(); n += 1\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno], n)\n"
    )
    # 2,000 creates through gVisor's gofer on a busy 2-core machine outlast the bombs' 4 s cell.
    result = bombs.run(code, key="inodes", timeout_s=cell_seconds(60.0))
    assert result.status is ExecutionStatus.OK, result.logs
    name, count = result.logs.split()
    assert name == "ENOSPC"
    assert int(count) <= bombs.config.session_inodes
    assert len(result.changed_files) <= 1000  # the server's scan is bounded too


def test_r9_fd_exhaustion_is_emfile_and_server_fds_stay_put(bombs: Harness) -> None:
    bombs.run("pass", key="fds")
    server_fds = len(os.listdir("/proc/self/fd"))
    code = (
        "import errno\n"
        "held = []\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        held.append(open('/dev/null'))\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno], len(held))\n"
        "for f in held:\n"
        "    f.close()\n"
    )
    name, count = bombs.run(code, key="fds").logs.split()
    assert name == "EMFILE"
    assert int(count) < bombs.config.nofile
    assert len(os.listdir("/proc/self/fd")) == server_fds


@pytest.mark.cgroup_v2
def test_r10_cpu_burn_is_throttled_to_the_quota(bombs: Harness) -> None:
    bombs.run("pass", key="burn")
    cgroup = bombs.cgroup("burn")
    used_before = cgroup.cpu_usage_ns()
    began = time.monotonic()
    bombs.run("import time\nend = time.monotonic() + 2\nwhile time.monotonic() < end:\n    pass", key="burn")
    wall = time.monotonic() - began
    used = (cgroup.cpu_usage_ns() - used_before) / 1e9
    assert cgroup.cpu_throttled() > 0
    assert used <= wall * bombs.config.cpus * 1.25 + 0.2  # type: ignore[operator]
