"""Which sandbox strength the host gives, and when the server must refuse to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbox.errors import SandboxUnavailable
from agentbox.sandbox import SandboxConfig, SessionManager, cgroups, isolation
from agentbox.sandbox.cgroups.v2 import V2, own_cgroup


def _caps(**changes: object) -> isolation.HostCapabilities:
    values: dict[str, object] = {
        "backend": "bubblewrap",
        "root": True,
        "missing_tools": (),
        "cgroups": cgroups.detect(),
        "cgroup_problem": None,
        "seccomp_arch": "x86_64",
        "backend_checks": (("backend", True, "bubblewrap 0.8.0"),),
    }
    values.update(changes)
    return isolation.HostCapabilities(**values)  # type: ignore[arg-type]


def test_a_full_host_is_strong_and_reports_everything_in_force() -> None:
    caps = _caps()
    config = SandboxConfig(sessions_dir=Path("/tmp/x"), runtime_dir=Path("/tmp/r"))
    assert caps.strong and isolation.unavailable_reason(caps) is None
    assert all(ok for _, ok, _ in isolation.report(caps, config))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"root": False}, "not root"),
        ({"cgroup_problem": "cgroup v2: the memory controllers are not delegated"}, "not delegated"),
        ({"seccomp_arch": None}, "seccomp"),
        ({"missing_tools": ("setpriv",)}, "setpriv"),
        (
            {"backend": "gvisor", "backend_checks": (("backend", False, "runsc not found"),)},
            "runsc not found",
        ),
    ],
)
def test_each_missing_piece_is_weaker_and_says_why(change: dict[str, object], words: str) -> None:
    caps = _caps(**change)
    config = SandboxConfig(sessions_dir=Path("/tmp/x"), runtime_dir=Path("/tmp/r"))
    assert not caps.strong
    reason = isolation.unavailable_reason(caps)
    assert reason is not None and words in reason
    report = isolation.report(caps, config)
    assert ("weak mode allowed", False, "allow_weak is off") in report


def test_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend 'docker'"):
        SessionManager(SandboxConfig(sessions_dir=tmp_path, runtime_dir=tmp_path, backend="docker"))


@pytest.mark.parametrize("backend", ["bubblewrap", "gvisor"])
def test_a_root_server_without_cgroups_misses_only_what_needs_a_cgroup(backend: str) -> None:
    caps = _caps(backend=backend, cgroup_problem="no cgroup v2 at /sys/fs/cgroup")
    config = SandboxConfig(sessions_dir=Path("/tmp/x"), runtime_dir=Path("/tmp/r"), cpus=1.0, allow_weak=True)
    assert caps.privileged and not caps.limits
    missing = [name for name, _, _ in isolation.missing(isolation.report(caps, config))]
    assert missing == ["cgroups", "memory limit", "cpu limit"]


def test_cgroup_v2_without_delegated_controllers_says_which(tmp_path: Path) -> None:
    own = own_cgroup()
    assert own is not None
    root = tmp_path / own.lstrip("/")  # where a v2 mount at tmp_path would hold our cgroup
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io\n")
    (root / "cgroup.subtree_control").write_text("")
    assert V2(tmp_path).problem() == (
        f"cgroup v2: the memory/pids controllers are not delegated to {root} "
        "(a systemd service needs Delegate=yes; a container its own cgroup namespace)."
    )
