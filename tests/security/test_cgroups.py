"""A session's cgroup, read from the kernel's own files, on whichever cgroup version the host has.

`make test` runs this module on the host (cgroup v1 here), for both backends, and again in a VM with
the pure v2 hierarchy (scripts/cgroup2-vm; gVisor there only where the VM has KVM): the caps are set,
an OOM kill is counted and reported, the kill leaves the cgroup empty, the next cell gets a fresh
kernel, and close removes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.sandbox import ExecutionStatus, cgroups
from agentbox.sandbox.cgroups.v2 import LEAF, own_cgroup
from agentbox.sandbox.kernel import OOM_MESSAGE
from tests.sandbox_fixtures import Harness, cell_seconds, worker_uid

pytestmark = [pytest.mark.slow, pytest.mark.cgroup_v2]


@pytest.fixture
def harness(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Harness]:
    uid_base = worker_uid(1_380_000 if backend == "bubblewrap" else 1_480_000)
    h = Harness(
        tmp_path_factory.mktemp("sessions"),
        backend=backend,
        uid_base=uid_base,
        exec_timeout_s=cell_seconds(20.0),
    )
    yield h
    h.close()


def test_a_session_cgroup_caps_counts_the_oom_kill_empties_and_goes(harness: Harness) -> None:
    harness.run("kept = 1", key="cg")
    cgroup = harness.cgroup("cg")
    config = harness.config
    assert cgroup.memory_limit() == config.memory_mb << 20
    assert cgroup.pids_limit() == harness.manager._backend.host_pids_max(config.pids_max)
    assert set(cgroup.pids()) and cgroup.pids_current() >= len(cgroup.pids())
    if cgroups.detect().version == 2:
        # One directory per session under our delegated root; the server itself sits in its leaf.
        (directory,) = cgroup.dirs
        root = directory.parent.parent
        assert {"cpu", "memory", "pids"} <= set((root / "cgroup.subtree_control").read_text().split())
        assert (directory / "memory.swap.max").read_text().strip() in ("0", "")
        assert config.cpus is not None
        assert (directory / "cpu.max").read_text().split() == [str(int(config.cpus * 100000)), "100000"]
        own = own_cgroup()
        assert own is not None and Path(own).name == LEAF
        assert (root / LEAF / "cgroup.procs").read_text().split().count(str(os.getpid())) == 1

    burn = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end:\n    pass"
    harness.run(burn, key="cg")
    assert cgroup.cpu_throttled() > 0 and cgroup.cpu_usage_ns() > 0

    oom_before = cgroup.oom_kills()
    result = harness.run("chunks = [bytearray(1 << 20) for _ in range(1024)]", key="cg")  # ≤ 1 GiB
    assert result.status is ExecutionStatus.KILLED and result.oom, result.logs
    assert result.logs.endswith(OOM_MESSAGE)
    assert cgroup.oom_kills() > oom_before
    assert cgroup.pids() == []  # the kill path emptied it; the next kernel starts lazily

    after = harness.run("print('kept' in globals())", key="cg")
    assert after.restarted and after.logs.strip() == "False"
    directories = cgroup.dirs
    harness.call(harness.manager.close("cg"))
    assert not any(d.exists() for d in directories)
