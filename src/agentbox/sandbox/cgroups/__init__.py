"""Per-session cgroups: the memory/pids/cpu caps and the one reliable kill path.

Two implementations of one interface, chosen by what is mounted at /sys/fs/cgroup: cgroup2 there
(every current distribution, and containers with their own cgroup namespace) is v2; anything else
(the hybrid layout, cgroup2 only at /sys/fs/cgroup/unified) is v1.
"""

from __future__ import annotations

from pathlib import Path

from agentbox.sandbox.cgroups.base import Hierarchy, SessionCgroup
from agentbox.sandbox.cgroups.v1 import V1
from agentbox.sandbox.cgroups.v2 import V2

MOUNT = Path("/sys/fs/cgroup")

__all__ = ["MOUNT", "Hierarchy", "SessionCgroup", "detect"]


def detect(mount: Path = MOUNT) -> Hierarchy:
    return V2(mount) if _filesystem_at(mount) == "cgroup2" else V1(mount)


def _filesystem_at(mount: Path) -> str | None:
    """The type of the filesystem mounted last at `mount` (what a lookup there reaches)."""
    found = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields, _, tail = line.partition(" - ")
                if fields.split()[4] == str(mount):
                    found = tail.split()[0]
    except (OSError, IndexError):
        return None
    return found
