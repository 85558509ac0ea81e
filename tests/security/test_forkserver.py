"""Promises the fork server adds (bubblewrap kernels are forks of one template process).

A forked kernel must live in exactly the sandbox bwrap built, share nothing with other sessions
that a fresh Python would not (random state), carry nothing of the server (the template is a
fresh, clean-environment process, never a fork of the server), and a dead template must cost
no session.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.sandbox import ExecutionStatus
from tests.sandbox_fixtures import Harness, worker_uid

NAMESPACES = ("user", "mnt", "net", "ipc", "uts", "pid", "cgroup")
RANDOM_DRAWS = (
    "import random, numpy\n"
    "print(random.random(), numpy.random.rand(), numpy.random.default_rng().random(), os.urandom(8).hex())"
)


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    # In the server's environment before the template starts.
    os.environ["AGENTBOX_FORK_CANARY"] = "canary-fork-91c2"
    try:
        harness = Harness(
            tmp_path_factory.mktemp("sessions"), backend="bubblewrap", uid_base=worker_uid(1_370_000)
        )
    finally:
        del os.environ["AGENTBOX_FORK_CANARY"]
    assert harness.manager.template_pid() is not None, "bubblewrap kernels are forked by default"
    yield harness
    harness.close()


def _template_pid(harness: Harness) -> int:
    pid = harness.manager.template_pid()
    assert pid is not None
    return pid


def _namespaces(pid: int) -> dict[str, str]:
    return {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in NAMESPACES}


def _inner_pid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("NSpid:")).split()[-1])


def test_sessions_draw_different_random_numbers(sandbox: Harness) -> None:
    """Forks start from the template's random state; each kernel must draw fresh seeds."""
    first = sandbox.run("import os\n" + RANDOM_DRAWS, key="rand_a").logs.split()
    second = sandbox.run("import os\n" + RANDOM_DRAWS, key="rand_b").logs.split()
    assert len(first) == len(second) == 4
    assert all(a != b for a, b in zip(first, second, strict=True)), (first, second)


def test_a_kernel_killed_by_a_signal_says_which(sandbox: Harness) -> None:
    result = sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", key="segv")
    assert result.status is ExecutionStatus.KILLED
    assert "the kernel died of SIGSEGV" in result.logs, result.logs
    assert sandbox.run("print('back')", key="segv").logs.strip() == "back"


@pytest.mark.cgroup_v2
def test_forked_kernel_joins_every_namespace_of_its_stub_and_none_of_the_template(forked: Harness) -> None:
    forked.run("x = 1", key="ns")
    pids = forked.session_pids("ns")
    by_inner = {_inner_pid(pid): pid for pid in pids}
    kernel = by_inner[int(forked.run("import os; print(os.getpid())", key="ns").logs)]
    stub = next(pid for pid in pids if Path(f"/proc/{pid}/exe").resolve().name == "sleep")
    kernel_ns, stub_ns = _namespaces(kernel), _namespaces(stub)
    template_ns, host_ns = _namespaces(_template_pid(forked)), _namespaces(os.getpid())
    assert kernel_ns == stub_ns
    for kind in NAMESPACES:
        assert kernel_ns[kind] != host_ns[kind], kind
        assert kernel_ns[kind] != template_ns[kind], kind
    # The kernel's root is the sandbox's: bwrap's /opt/agentbox, not the template's tmpfs.
    assert os.readlink(f"/proc/{kernel}/root") == "/"
    listing = forked.run("import os; print(sorted(os.listdir('/')))", key="ns").logs
    assert listing.strip() == repr(sorted(os.listdir(f"/proc/{stub}/root")))


def test_the_template_holds_nothing_of_the_server(forked: Harness) -> None:
    template = _template_pid(forked)
    environ = Path(f"/proc/{template}/environ").read_bytes()
    assert b"canary-fork-91c2" not in environ
    assert b"AGENTBOX" not in environ
    with open(f"/proc/{template}/status") as f:
        parent = int(next(line for line in f if line.startswith("PPid:")).split()[1])
    assert parent == os.getpid(), "the template is the server's child by exec, not a fork of it"
    cmdline = Path(f"/proc/{template}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [b"/opt/agentbox/runtime/bin/python3", b"-E"]
    code = "import os\nprint(os.environ.get('AGENTBOX_FORK_CANARY'), sorted(os.environ))"
    assert forked.run(code, key="canary").logs.startswith("None ")


def test_the_template_is_not_root_and_keeps_only_the_capabilities_to_enter_a_sandbox(forked: Harness) -> None:
    status = _status(_template_pid(forked))
    template_uid = forked.config.uid_base - 1
    assert status["Uid"].split() == [str(template_uid)] * 4
    assert status["Gid"].split() == [str(template_uid)] * 4 and status["Groups"].strip() == ""
    # dac_override 1, setgid 6, setuid 7, sys_chroot 18, sys_ptrace 19, sys_admin 21: nothing else.
    wanted = sum(1 << bit for bit in (1, 6, 7, 18, 19, 21))
    for kind in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[kind], 16) == wanted, kind
    # The kernel's parent, which waits inside the session's namespaces, keeps none of them.
    forked.run("x = 1", key="caps")
    by_inner = {_inner_pid(pid): pid for pid in forked.session_pids("caps")}
    kernel = by_inner[int(forked.run("import os; print(os.getpid())", key="caps").logs)]
    parent = _status(int(_status(kernel)["PPid"]))
    assert parent["Uid"].split() == [str(forked.session_uid("caps"))] * 4
    assert int(parent["CapEff"], 16) == int(parent["CapPrm"], 16) == 0
    assert parent["NoNewPrivs"] == "1"


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_a_dead_template_costs_no_session(forked: Harness) -> None:
    forked.run("kept = 41", key="survivor")
    os.kill(_template_pid(forked), signal.SIGKILL)
    assert forked.run("print(kept + 1)", key="survivor").logs.strip() == "42"
    fresh = forked.run("import pandas; print(pandas.__name__)", key="after_template_death")
    assert fresh.status is ExecutionStatus.OK and fresh.logs.strip() == "pandas"
