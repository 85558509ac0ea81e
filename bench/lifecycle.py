"""The lifecycle timings the sandbox tests once asserted (tests/security/test_lifecycle.py), measured.

Each is taken on a manager with the ladder's short limits (bench/sessions.py); the tests keep
asserting what happens (interrupted, killed, state kept or lost), these say how long it took.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from agentbox.sandbox import ExecutionStatus, SessionManager

_keys = (f"life_{n}" for n in itertools.count())
SLEEPS = "import time\ntime.sleep(100)"
BUSY = "while True:\n    pass"
STOPS = "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)"
DEAF_TO_TERM = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
ONE_SECOND = "import time\ntime.sleep(1)"


async def on_request(sandbox: SessionManager) -> float:
    """An interrupt asked for by the API (a cancelled run) → the cell's reply back."""
    key = next(_keys)
    await sandbox.execute(key, "x = 1")
    cell = asyncio.create_task(sandbox.execute(key, SLEEPS, timeout_s=60))
    while not await sandbox.interrupt(key):  # as early as the manager takes it
        await asyncio.sleep(0)
    asked = time.perf_counter()
    result = await cell
    took = time.perf_counter() - asked
    assert result.status is ExecutionStatus.INTERRUPTED, result.logs
    await sandbox.close(key)
    return took


async def past_deadline(sandbox: SessionManager, code: str, due_s: float, status: ExecutionStatus) -> float:
    """A cell past its deadline (or past deadline and grace) → its reply back, from when it was due."""
    key = next(_keys)
    await sandbox.execute(key, "x = 1")
    started = time.perf_counter()
    result = await sandbox.execute(key, code)
    took = time.perf_counter() - started - due_s
    assert result.status is status, result.logs
    await sandbox.close(key)
    return took


async def close_deaf(sandbox: SessionManager) -> float:
    """Closing a session whose kernel ignores SIGTERM → closed."""
    key = next(_keys)
    await sandbox.execute(key, DEAF_TO_TERM)
    started = time.perf_counter()
    await sandbox.close(key)
    took = time.perf_counter() - started
    assert not sandbox.has_session(key)
    return took


async def side_by_side(sandbox: SessionManager) -> float:
    """Two warm sessions each sleeping 1 s at once → both back (≈1 s when they run concurrently)."""
    keys = [next(_keys), next(_keys)]
    for key in keys:
        await sandbox.execute(key, "pass")
    started = time.perf_counter()
    results = await asyncio.gather(*(sandbox.execute(k, ONE_SECOND, timeout_s=10) for k in keys))
    took = time.perf_counter() - started
    assert all(r.status is ExecutionStatus.OK for r in results), [r.logs for r in results]
    for key in keys:
        await sandbox.close(key)
    return took


async def timings(
    sandbox: SessionManager, timeout_s: float, grace_s: float, reps: int
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "interrupt on request → reply back": [],
        "interrupt: busy loop past its deadline → KeyboardInterrupt back": [],
        "kill: SIGSTOPped kernel, deadline + grace over → reply back": [],
        "close of a session ignoring SIGTERM → closed": [],
        "two 1 s cells in two sessions at once → both back": [],
    }
    names = list(out)
    for _ in range(reps):
        out[names[0]].append(await on_request(sandbox))
        out[names[1]].append(await past_deadline(sandbox, BUSY, timeout_s, ExecutionStatus.TIMEOUT))
        out[names[2]].append(await past_deadline(sandbox, STOPS, timeout_s + grace_s, ExecutionStatus.KILLED))
        out[names[3]].append(await close_deaf(sandbox))
        out[names[4]].append(await side_by_side(sandbox))
    return out
