"""Sandbox-side figures: new session → first output, chart, live round trip, burst, memory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agentbox.sandbox import ExecutionStatus, InputFile, SandboxConfig, SessionManager, cgroups
from agentbox.sandbox.config import default_pool_size
from agentbox.sandbox.manager import cgroup_group
from bench import lifecycle
from bench.stats import Figure, ms

CSV_NAME = "synthetic_500_quarterly_results.csv"
CHART = f"""
import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv('{CSV_NAME}')
df[df['sector'] == 'TRANSPORTATION'].plot.bar(x='name', y='operating_profit', legend=False)
plt.show()
"""
_keys = (f"bench_{n}" for n in itertools.count())


@contextlib.asynccontextmanager
async def running(sessions_dir: Path, runtime: Path, **options: object) -> AsyncIterator[SessionManager]:
    """A started SessionManager, closed (every session and the pool torn down) on the way out."""
    sandbox = SessionManager(SandboxConfig(sessions_dir=sessions_dir, runtime_dir=runtime, **options))  # type: ignore[arg-type]
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.aclose()


async def wait_pool(sandbox: SessionManager) -> None:
    """Until the warm pool is full again (a new thread arriving at a quiet moment)."""
    stats = sandbox.pool_statistics()
    while stats["ready"] < stats["target"]:
        await asyncio.sleep(0.02)
        stats = sandbox.pool_statistics()


async def first_output(sandbox: SessionManager, reps: int) -> list[float]:
    """New key → `print(1)` answered; each session is closed afterwards (not timed)."""
    samples = []
    for _ in range(reps):
        await wait_pool(sandbox)
        key = next(_keys)
        started = time.perf_counter()
        result = await sandbox.execute(key, "print(1)")
        samples.append(time.perf_counter() - started)
        assert result.logs.strip() == "1", result.logs
        await sandbox.close(key)
    return samples


async def first_chart(sandbox: SessionManager, csv: Path, reps: int) -> tuple[list[float], list[float]]:
    """New key with the fixture placed → a pandas bar chart PNG back; and the same cell run again
    in that warm session (the floor: the chart's own pandas and matplotlib work)."""
    samples, again = [], []
    for _ in range(reps):
        await wait_pool(sandbox)
        key = next(_keys)
        started = time.perf_counter()
        result = await sandbox.execute(key, CHART, [InputFile(CSV_NAME, csv, "file-bench")])
        samples.append(time.perf_counter() - started)
        assert result.status is ExecutionStatus.OK and result.images[0].startswith(b"\x89PNG"), result.logs
        started = time.perf_counter()
        result = await sandbox.execute(key, CHART)
        again.append(time.perf_counter() - started)
        assert result.status is ExecutionStatus.OK and result.images[0].startswith(b"\x89PNG"), result.logs
        await sandbox.close(key)
    return samples, again


async def round_trip(sandbox: SessionManager, reps: int) -> list[float]:
    key = next(_keys)
    await sandbox.execute(key, "x = 1")
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        await sandbox.execute(key, "x += 1")
        samples.append(time.perf_counter() - started)
    await sandbox.close(key)
    return samples


async def burst(sandbox: SessionManager, width: int) -> tuple[list[float], int]:
    """`width` new sessions' first cells at once: each one's time to output, and the failures."""

    async def one(key: str) -> float:
        started = time.perf_counter()
        result = await sandbox.execute(key, "print(1)")
        if result.logs.strip() != "1":
            raise RuntimeError(result.logs)
        return time.perf_counter() - started

    await wait_pool(sandbox)
    keys = [next(_keys) for _ in range(width)]
    results = await asyncio.gather(*(one(k) for k in keys), return_exceptions=True)
    await asyncio.gather(*(sandbox.close(k) for k in keys))
    times = [r for r in results if isinstance(r, float)]
    return times, len(results) - len(times)


LADDER_TIMEOUT_S = 0.5
LADDER_GRACE_S = 0.5
SLEEPS = "import time\ntime.sleep(100)"
IGNORES_SIGINT = (
    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.01)"
)


async def timeout_ladder(sandbox: SessionManager, reps: int) -> dict[str, list[float]]:
    """The ladder's rungs, each timed from the moment it is due: deadline → SIGINT answered,
    grace over → session killed, and the next cell's output after each (L11: it must not wait)."""
    rungs: dict[str, list[float]] = {"interrupt": [], "after interrupt": [], "kill": [], "after kill": []}
    for _ in range(reps):
        key = next(_keys)
        await sandbox.execute(key, "x = 1")
        started = time.perf_counter()
        interrupted = await sandbox.execute(key, SLEEPS)
        rungs["interrupt"].append(time.perf_counter() - started - LADDER_TIMEOUT_S)
        assert interrupted.status is ExecutionStatus.TIMEOUT, interrupted.logs
        assert "KeyboardInterrupt" in interrupted.logs, interrupted.logs
        started = time.perf_counter()
        kept = await sandbox.execute(key, "print(x)")
        rungs["after interrupt"].append(time.perf_counter() - started)
        assert kept.logs.strip() == "1", kept.logs
        started = time.perf_counter()
        killed = await sandbox.execute(key, IGNORES_SIGINT)
        rungs["kill"].append(time.perf_counter() - started - LADDER_TIMEOUT_S - LADDER_GRACE_S)
        assert killed.status is ExecutionStatus.KILLED, killed.logs
        started = time.perf_counter()
        fresh = await sandbox.execute(key, "print('x' in globals())")
        rungs["after kill"].append(time.perf_counter() - started)
        assert fresh.restarted and fresh.logs.strip() == "False", fresh.logs
        await sandbox.close(key)
    return rungs


def memory_of(pids: list[int]) -> tuple[int, int]:
    """Unique and proportional set size in bytes of these processes together (smaps_rollup)."""
    uss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in text.splitlines()[1:]}
        uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        pss += fields.get("Pss", 0)
    return uss, pss


def session_pids(sessions_dir: Path) -> dict[str, list[int]]:
    """The processes of each live session of another process's manager (a server), by its cgroup."""
    group = cgroup_group(sessions_dir)
    hierarchy = cgroups.detect()
    return {name: hierarchy.session(group, name).pids() for name in hierarchy.session_names(group)}


def _mb(per_session: list[list[int]]) -> tuple[list[float], list[float]]:
    pairs = [memory_of(pids) for pids in per_session]
    return [u / 2**20 for u, _ in pairs], [p / 2**20 for _, p in pairs]


async def idle_memory(sandbox: SessionManager, sessions: int) -> tuple[list[float], list[float]]:
    """USS and PSS (MB) per idle session that ran a cell with numpy, pandas and matplotlib loaded;
    the pool's sandboxes (never used) are not among them (`pooled_memory`)."""
    keys = [next(_keys) for _ in range(sessions)]
    for key in keys:
        result = await sandbox.execute(key, "import numpy, pandas, matplotlib.pyplot\nprint('up')")
        assert result.logs.strip() == "up", result.logs
    used = [sandbox._sessions[key] for key in keys]  # as tests/sandbox_fixtures.py reads them
    memory = _mb([s.cgroup.pids() for s in used if s.cgroup is not None])
    for key in keys:
        await sandbox.close(key)
    return memory


async def pooled_memory(sandbox: SessionManager) -> tuple[list[float], list[float]]:
    """USS and PSS (MB) of each pooled sandbox: started, never claimed, no cell run."""
    await wait_pool(sandbox)
    return _mb([s.cgroup.pids() for s in sandbox._pool if s.cgroup is not None])


async def measure(
    sessions_dir: Path, runtime: Path, csv: Path, quick: bool, backend: str | None
) -> list[Figure]:
    label = f" [{backend or 'bubblewrap'}]"
    options: dict[str, object] = {"backend": backend} if backend else {}
    figures: list[Figure] = []
    # Without a pool: every new session starts its sandbox (and, for bubblewrap, forks its kernel
    # from the template) on demand.
    async with running(sessions_dir / "cold", runtime, **options) as cold:
        figures.append(
            Figure.of(
                "new session, no pool → first print(1)" + label,
                ms(await first_output(cold, 2 if quick else 8)),
            )
        )
        template = cold.template_pid()
        if template is not None:
            uss, pss = memory_of([template])
            figures.append(
                Figure.of("template process USS (shared by every session)" + label, [uss / 2**20], "MB")
            )
            figures.append(Figure.of("template process PSS" + label, [pss / 2**20], "MB"))
    if not backend or backend == "bubblewrap":
        # The baseline of the fork server, in the same run: each kernel a Python of its own that
        # imports the libraries itself (what gVisor still does).
        async with running(sessions_dir / "exec", runtime, fork_server=False, **options) as exec_kernels:
            figures.append(
                Figure.of(
                    "baseline: new session, no pool, no fork server → first print(1)" + label,
                    ms(await first_output(exec_kernels, 2 if quick else 6)),
                )
            )
            uss, pss = await idle_memory(exec_kernels, 2 if quick else 4)
            figures.append(Figure.of("baseline: idle session USS, no fork server" + label, uss, "MB"))
            figures.append(Figure.of("baseline: idle session PSS, no fork server" + label, pss, "MB"))
    # The timeout ladder with short limits: what each rung costs beyond the time it is due.
    async with running(
        sessions_dir / "ladder", runtime, exec_timeout_s=LADDER_TIMEOUT_S, interrupt_grace_s=LADDER_GRACE_S,
        **options,
    ) as short:  # fmt: skip
        rungs = await timeout_ladder(short, 1 if quick else 6)
        rungs |= await lifecycle.timings(short, LADDER_TIMEOUT_S, LADDER_GRACE_S, 1 if quick else 6)
    figures += [
        Figure.of("interrupt: deadline → KeyboardInterrupt back" + label, ms(rungs["interrupt"])),
        Figure.of("next cell after an interrupt → output" + label, ms(rungs["after interrupt"])),
        Figure.of("kill: grace over → session killed, reply back" + label, ms(rungs["kill"])),
        Figure.of("next cell after a kill → output (fresh kernel)" + label, ms(rungs["after kill"])),
    ]
    figures += [Figure.of(name + label, ms(rungs[name])) for name in list(rungs)[4:]]
    width = 4 if quick else 50
    pool_size = default_pool_size(backend or "bubblewrap", fork_server=True)
    if pool_size > (os.cpu_count() or 1):
        # The burst again with the old default pool (one per core): what the starts themselves sustain.
        async with running(
            sessions_dir / "small-pool", runtime, pool_size=os.cpu_count() or 1, **options
        ) as small:
            times, failures = await burst(small, width)
        figures.append(
            Figure.of(
                f"burst of {width}, pool of {os.cpu_count() or 1} → first output (failures: {failures})"
                + label,
                ms(times),
            )
        )
    # As the server runs by default: the pool sized to the machine.
    async with running(sessions_dir / "pooled", runtime, pool_size=pool_size, **options) as sandbox:
        charts, charts_again = await first_chart(sandbox, csv, 2 if quick else 8)
        figures += [
            Figure.of(
                "new session → first print(1)" + label, ms(await first_output(sandbox, 2 if quick else 10))
            ),
            Figure.of("new session → chart PNG" + label, ms(charts)),
            Figure.of("the same chart again in its warm session" + label, ms(charts_again)),
            Figure.of("live cell round trip" + label, ms(await round_trip(sandbox, 5 if quick else 200))),
        ]
        times, failures = await burst(sandbox, width)
        figures.append(
            Figure.of(
                f"burst of {width}, default pool of {pool_size} → first output (failures: {failures})"
                + label,
                ms(times),
            )
        )
        uss, pss = await idle_memory(sandbox, 2 if quick else 6)
        figures.append(Figure.of("idle session USS (ran a cell)" + label, uss, "MB"))
        figures.append(Figure.of("idle session PSS (ran a cell)" + label, pss, "MB"))
        uss, pss = await pooled_memory(sandbox)
        figures.append(Figure.of("pooled sandbox USS (never used)" + label, uss, "MB"))
        figures.append(Figure.of("pooled sandbox PSS (never used)" + label, pss, "MB"))
    return figures
