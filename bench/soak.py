"""`make soak`: mixed load for SOAK_MINUTES (default 30) against one real server; its RSS and open
fds must stay flat, and nothing of its sessions may be left beyond the pool at the end.

    SOAK_MINUTES=3 python -m bench.soak [--clients 20]

Each client works through bench/load.py's mix (upload + create-and-run polled, streamed runs,
create-and-run streamed, a polled run) again and again. Every ~30 s the server's RSS (VmRSS) and
open fds (/proc/PID/fd) are sampled with its live sessions. Flat means: after a 6-minute
warm-up, the median of the last third of the samples is within 10 % of the first third's (fds: and
16 more); a soak under 9 minutes prints its curve without a verdict on it. At the end every thread
is deleted, and the server must hold no session cgroup, mount or uid beyond its pool. Every run is
checked as in the load bench; any failure fails the soak.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agentbox.sandbox.config import default_pool_size
from bench import load
from bench.sessions import session_pids

IDLE_S = 60  # sessions of idle threads go (and their uids come back) during the soak
# Before this the server's memory rightly grows: a finished run's events stay 300 s for late
# readers (engine/events.py), idle sessions stay IDLE_S.
WARM_UP_S = 360


def sample(pid: int, sessions_dir: Path) -> tuple[float, int, int]:
    """The server's RSS in MB, its open fds, and its live session cgroups (pool included)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), len(session_pids(sessions_dir))


def flat(values: list[float], slack: float) -> tuple[bool, float, float]:
    """Whether the last third's median is within 10 % (+ slack) of the first third's (the values
    taken after the warm-up)."""
    settled = values or [float("nan")]
    third = max(1, len(settled) // 3)
    first, last = statistics.median(settled[:third]), statistics.median(settled[-third:])
    return last <= first * 1.10 + slack, first, last


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def leftovers(pid: int, sessions_dir: Path, pool: int) -> list[str]:
    """What of the server's sessions is left beyond its pool: cgroups, mounts, uids."""
    problems = []
    cgroups = len(session_pids(sessions_dir))
    mounts = {
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(sessions_dir) + "/")
    }
    mounted = {m[len(str(sessions_dir)) + 1 :].split("/")[0] for m in mounts}
    uids = set()
    for child in descendants(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if uid >= 1_200_000:  # SandboxConfig.uid_base; the template runs as uid_base - 1
            uids.add(uid)
    for what, count in (
        ("session cgroups", cgroups),
        ("mounted session dirs", len(mounted)),
        ("uids", len(uids)),
    ):
        if count > pool:
            problems.append(f"{count} {what} left, the pool is {pool}")
    return problems


async def mixed(base_url: str, assistant_id: str, clients: int, until: float, tally: load.Tally) -> None:
    async def one(n: int) -> None:
        client = load.Client(base_url, tally, assistant_id)
        try:
            round_ = 0
            while time.monotonic() < until:
                try:
                    await client.work(n * 100_000 + round_, 5)
                except Exception as exc:
                    tally.fail(load._kind(exc), f"client {n}: {exc!r}")
                round_ += 1
        finally:
            await client.http.aclose()

    await asyncio.gather(*(one(n) for n in range(clients)))


async def soak(server_url: str, pid: int, sessions_dir: Path, minutes: float, clients: int) -> tuple:
    headers = {"Authorization": f"Bearer {load.KEY}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers) as http:
        assistant = await http.post(
            "/assistants", json={"model": "m", "tools": [{"type": "code_interpreter"}]}
        )
        assistant_id = assistant.raise_for_status().json()["id"]
    tally = load.Tally()
    began = time.monotonic()
    until = began + minutes * 60
    every = min(30.0, minutes * 60 / 12)
    samples: list[tuple[float, float, int, int, int]] = []
    worker = asyncio.create_task(mixed(server_url, assistant_id, clients, until, tally))
    while not worker.done():
        rss, fds, sessions = await asyncio.to_thread(sample, pid, sessions_dir)
        samples.append((time.monotonic() - began, rss, fds, sessions, len(tally.latencies)))
        await asyncio.wait([worker], timeout=every)
    await worker
    seconds = time.monotonic() - began
    await load.verify(server_url, tally)
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=60) as http:
        for thread in {e.thread_id for e in tally.expected}:
            (await http.delete(f"/threads/{thread}")).raise_for_status()
    return tally, samples, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args(argv)
    pool = default_pool_size("bubblewrap", fork_server=True)
    with tempfile.TemporaryDirectory(prefix="agentbox-soak-") as scratch:
        data_dir = Path(scratch) / "data"
        sessions_dir = data_dir.resolve() / "sessions"
        model, server = load.start_servers(data_dir, {"AGENTBOX_SESSION_IDLE_S": str(IDLE_S)}, 200_000)
        try:
            pid = server.pid
            tally, samples, seconds = asyncio.run(
                soak(server.base_url, pid, sessions_dir, args.minutes, args.clients)
            )
            time.sleep(3)  # the deletes' teardowns, and the pool's refill
            left = leftovers(pid, sessions_dir, pool)
        finally:
            server.stop()
            model.stop()
    print("| t (s) | RSS (MB) | open fds | live sessions (pool included) | fds per session | runs done |")
    print("|---|---|---|---|---|---|")
    for at, rss, fds, sessions, runs in samples:
        print(f"| {at:.0f} | {rss:.1f} | {fds} | {sessions} | {fds / max(1, sessions):.1f} | {runs} |")
    settled = [s for s in samples if s[0] >= WARM_UP_S]
    rss_flat, rss_first, rss_last = flat([s[1] for s in settled], 0)
    fds_flat, fds_first, fds_last = flat([float(s[2]) for s in settled], 16)
    if len(settled) < 6:
        print(f"\nToo short to judge flatness: {WARM_UP_S / 60:.0f} min of warm-up, then 3 min or more.")
        rss_flat = fds_flat = True
    runs = len(tally.latencies)
    rate = runs / seconds
    print(f"\n{runs} runs in {seconds:.0f} s ({rate:.1f} runs/s), {args.clients} clients", end="")
    print(f", {tally.requests} requests")
    print(f"RSS median {rss_first:.1f} → {rss_last:.1f} MB ({'flat' if rss_flat else 'GROWS'})")
    print(f"open fds median {fds_first:.0f} → {fds_last:.0f} ({'flat' if fds_flat else 'GROWS'})")
    print("left beyond the pool:", "; ".join(left) or "nothing")
    failures = [f"{dict(tally.errors)} {tally.examples}"] if tally.errors else []
    failures += [] if rss_flat else ["the server's RSS grows"]
    failures += [] if fds_flat else ["the server's open fds grow"]
    failures += left
    for line in failures:
        print("FAILED", line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
