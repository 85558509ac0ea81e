"""Which sandbox strength the host gives, and when the server must refuse to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentbox.errors import SandboxUnavailable
from agentbox.sandbox import SandboxConfig, SessionManager, isolation


def _caps(**changes: object) -> isolation.HostCapabilities:
    values: dict[str, object] = {
        "backend": "bubblewrap",
        "root": True,
        "missing_tools": (),
        "cgroups": True,
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
        ({"cgroups": False}, "cgroup v1"),
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
