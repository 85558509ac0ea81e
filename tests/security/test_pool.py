"""The warm pool: a claimed sandbox never held anyone's data, and none is reused after its session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.sandbox import InputFile, SessionManager, datadir
from tests.sandbox_fixtures import IN_EMULATED_VM, Harness, worker_uid

pytestmark = [pytest.mark.slow, pytest.mark.cgroup_v2]


@pytest.fixture
def pooled(tmp_path: Path, backend: str) -> Iterator[Harness]:
    if backend != "bubblewrap":
        pytest.skip("the pool is backend-independent; measured once on the default backend")
    harness = Harness(tmp_path / "sessions", pool_size=1, uid_base=worker_uid(1_330_000))
    yield harness
    harness.close()


def wait_ready(harness: Harness) -> None:
    for _ in range(300):
        if harness.manager.pool_statistics()["ready"] >= 1:
            return
        harness.wait(0.05)
    raise AssertionError("the pool never filled")


def test_a_claimed_sandbox_is_clean_and_never_reused(pooled: Harness, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    wait_ready(pooled)
    (waiting,) = (s.name for s in pooled.manager._pool)  # how fast a claim is: bench/, "new session →"
    first = pooled.run(
        "import os\nleftover = sorted(os.listdir('.'))\nsecret_var = 41\nprint(leftover)",
        key="thread_a",
        files=[InputFile("secret.csv", secret, "file-secret")],
    )
    assert first.logs.strip() == "['secret.csv']"  # only this thread's file, placed after the claim
    assert pooled.manager._sessions["thread_a"].name == waiting  # the pool's, already up
    first_dir = pooled.data_dir("thread_a")
    pooled.call(pooled.manager.close("thread_a"))
    assert not first_dir.exists()

    wait_ready(pooled)
    look = "import os\nprint(sorted(os.listdir('.')), 'secret_var' in globals())"
    second = pooled.run(look, key="thread_b")
    assert second.logs.strip() == "[] False"
    assert pooled.data_dir("thread_b") != first_dir


def test_a_shutdown_mid_start_leaves_no_session_behind(tmp_path: Path, backend: str) -> None:
    """Cancelling a start does not stop the thread mounting its fs and making its cgroup: a server
    stopping while requests and the pool are still starting sandboxes must not leave those behind."""
    if backend != "bubblewrap":
        pytest.skip("the pool is backend-independent; measured once on the default backend")
    sessions = tmp_path / "sessions"
    # Under emulation (the cgroup v2 VM) each harness takes ~20 s to start: two of the four points.
    for delay_s in (0.0, 0.003) if IN_EMULATED_VM else (0.0, 0.001, 0.003, 0.01):
        harness = Harness(sessions, pool_size=4, uid_base=worker_uid(1_330_000))

        async def cancel_a_start(manager: SessionManager, delay_s: float) -> None:
            started = asyncio.ensure_future(manager.execute("thread_a", "print(1)"))
            await asyncio.sleep(delay_s)
            started.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await started

        harness.call(cancel_a_start(harness.manager, delay_s))
        harness.close()
        assert datadir.mounts_under(sessions) == [], delay_s
        assert list(sessions.iterdir()) == [], delay_s
