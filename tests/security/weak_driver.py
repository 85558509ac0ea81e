"""Runs real sessions on a host without cgroups and prints what the host saw, as JSON.

test_weak_mode.py starts this under a private mount namespace with an empty tmpfs over
/sys/fs/cgroup (a root server with no usable cgroups, AGENTBOX_ALLOW_WEAK_SANDBOX's case).
argv: sessions dir, backend.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.sandbox_fixtures import FORK_BOMB, Harness, cell_seconds, host_pids, worker_uid

MARKER = "987.654"  # a `sleep` argument no other process on the host uses


def main() -> None:
    sessions_dir, backend = Path(sys.argv[1]), sys.argv[2]
    # The bomb's 64 forks take gVisor several seconds, more on a loaded machine: room past the default.
    harness = Harness(
        sessions_dir,
        backend=backend,
        allow_weak=True,
        uid_base=worker_uid(1_360_000),
        exec_timeout_s=cell_seconds(60),
    )
    facts: dict[str, object] = {}
    try:
        facts["report"] = [list(check) for check in harness.manager.isolation_report()]
        inside = harness.run(
            f"import os, subprocess\nq = subprocess.Popen(['sleep', '{MARKER}'])\nprint(os.getuid())"
        )
        facts["uid_inside"] = inside.logs.strip()
        facts["session_uid"] = harness.session_uid("thread_a")
        facts["sleepers"] = _sleepers()
        sessions = [(s.name, s.uid) for s in harness.manager._sessions.values()]
        bomb = harness.run(FORK_BOMB, key="bomb")
        facts["bomb"] = bomb.logs.strip()
        harness.call(harness.manager.close("thread_a"))
        harness.call(harness.manager.close("bomb"))
        facts["sleepers_after_close"] = _sleepers()
        facts["left_after_close"] = [pid for name, uid in sessions for pid in _processes_of(name, uid)]
    finally:
        harness.close()
    print(json.dumps(facts))


def _sleepers() -> list[dict[str, int]]:
    """Every host process running `sleep MARKER`: its real uid, and its parent's (the kernel's)."""
    found = []
    for pid in host_pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if cmdline[:2] != [b"sleep", MARKER.encode()]:
                continue
            found.append({"uid": _real_uid(pid), "parent_uid": _real_uid(_parent(pid))})
        except (OSError, StopIteration, ValueError):
            continue
    return found


def _processes_of(session: str, uid: int) -> list[int]:
    """Host processes of a session: running as its uid, or naming it (gVisor's runsc, gofer, sandbox)."""
    found = []
    for pid in host_pids():
        try:
            if _real_uid(pid) == uid or session.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except (OSError, StopIteration):
            continue
    return found


def _real_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


if __name__ == "__main__":
    main()
