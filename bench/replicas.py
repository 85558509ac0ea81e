"""Scale-out: the throughput of two replicas on one PostgreSQL against one, measured side by side.

    python -m bench.replicas [--runs 200] [--clients 32] [--rounds 1]

Three configurations, each on fresh servers, in the same run: one replica on SQLite (the default:
what PostgreSQL itself costs shows against it), one replica on PostgreSQL, two replicas on the same
PostgreSQL (a fresh database each). `clients` clients at once work through `runs` runs, each:
create a thread with its user message, create a run, poll it (at the `openai-poll-after-ms` the
server sends, as the SDKs' create_and_poll does) until it ends, list the thread's messages. Every
request goes to the next replica in turn (round robin per client), so with two replicas a run is
made on one and polled on both. The scripted model answers each run from its own message, text
only (no sandbox: the figure is the API and the database, not kernels). Every run must end
`completed` with its answer; any 5xx, any request without an HTTP answer, any wrong run fails the
bench. With `--rounds N` the configurations take turns N times and each figure is the median.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.postgres_server import PostgresServer
from tests.replicas import model_for_load, replica, start_all, stop_all
from tests.scripted_model import Answer, Messages, ScriptedModel, Text

from bench.stats import Figure

KEY = "sk-bench-replicas"
CONFIGS = {  # name: (database, replicas)
    "1 replica, SQLite": ("sqlite", 1),
    "1 replica, PostgreSQL": ("postgresql", 1),
    "2 replicas, PostgreSQL": ("postgresql", 2),
}
WARM_UP_RUNS = 8
"""Untimed runs first on each configuration (connection pools, first queries' plans)."""
_ASKED = re.compile(r"replicas bench (\d+)")


def _answer(messages: Messages) -> Answer:
    user = next(m for m in reversed(messages) if m.get("role") == "user")
    asked = _ASKED.search(json.dumps(user.get("content")))
    return Text(f"answer {asked.group(1) if asked else '?'}")


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    requests: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")


class Client:
    """One client: a connection pool per replica, each request to the next replica in turn."""

    def __init__(self, base_urls: list[str], tally: Tally, start: int) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        self.https = [httpx.AsyncClient(base_url=url, headers=headers, timeout=120) for url in base_urls]
        self._turn = itertools.count(start)
        self.tally = tally

    async def call(self, method: str, path: str, **options: object) -> httpx.Response:
        replica = next(self._turn) % len(self.https)
        self.tally.requests += 1
        response = await self.https[replica].request(method, path, **options)  # type: ignore[arg-type]
        return response.raise_for_status()

    async def run(self, n: int, assistant_id: str) -> None:
        """Thread → run → poll until it ends → messages; the run must have answered `answer n`."""
        began = time.perf_counter()
        body = {"messages": [{"role": "user", "content": f"replicas bench {n}"}]}
        thread = (await self.call("POST", "/threads", json=body)).json()["id"]
        response = await self.call("POST", f"/threads/{thread}/runs", json={"assistant_id": assistant_id})
        run = response.json()
        while run["status"] in ("queued", "in_progress", "cancelling"):
            await asyncio.sleep(int(response.headers.get("openai-poll-after-ms", 1000)) / 1000)
            response = await self.call("GET", f"/threads/{thread}/runs/{run['id']}")
            run = response.json()
        messages = (await self.call("GET", f"/threads/{thread}/messages")).json()["data"]
        elapsed = time.perf_counter() - began
        if run["status"] != "completed":
            raise RuntimeError(f"run {run['id']} ended {run['status']}: {run.get('last_error')}")
        text = messages[0]["content"][0]["text"]["value"] if messages[0]["role"] == "assistant" else None
        if text != f"answer {n}":
            raise RuntimeError(f"run {run['id']} answered {text!r}, not 'answer {n}'")
        self.tally.latencies.append(elapsed)
        self.tally.completed += 1

    async def aclose(self) -> None:
        for http in self.https:
            await http.aclose()


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) so far of each kind of process this bench started, by the command
    name of its child ("agentbox", "postgres"), each with its descendants, and this process itself
    (the clients and the scripted model)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    own: dict[int, float] = {}
    comm: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone since listdir
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        pid = int(entry)
        parent[pid], comm[pid] = int(rest[1]), name
        # utime, stime, and the children's that were waited for (a PostgreSQL backend that ended)
        own[pid] = sum(int(x) for x in rest[11:15]) / tick
    me = os.getpid()
    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    for pid, seconds in own.items():
        top = pid
        while top in parent and parent[top] not in (me, 0, 1):
            top = parent[top]
        if parent.get(top) == me:
            totals[comm[top]] += seconds
    spent = os.times()
    totals["bench (clients, scripted model)"] = spent.user + spent.system
    return dict(totals)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, every process counted (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already in user
    return total - fields[3] - fields[4], total  # less idle and iowait


def _kind(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


async def drive(
    base_urls: list[str], assistant_id: str, first: int, runs: int, clients: int, tally: Tally
) -> float:
    """`runs` runs numbered from `first`, `clients` at a time; the wall time until the last ended."""
    numbers = iter(range(first, first + runs))

    async def one(c: int) -> None:
        client = Client(base_urls, tally, start=c)
        try:
            for n in numbers:
                try:
                    await client.run(n, assistant_id)
                except Exception as exc:
                    tally.fail(_kind(exc), f"run {n}: {exc!r}")
        finally:
            await client.aclose()

    began = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    return time.perf_counter() - began


@dataclass(frozen=True)
class Measured:
    config: str
    runs_per_s: float
    latencies: list[float]
    tally: Tally
    server_errors: list[str]
    cpu_per_run: dict[str, float]
    """CPU seconds per completed run, by kind of process (cpu_seconds), over the timed runs."""
    machine_busy: float
    """The fraction of the machine's CPU time busy over the timed runs, whoever used it."""


def measure_one(
    root: Path, postgres: PostgresServer, config: str, database: str, runs: int, clients: int
) -> Measured:
    model = model_for_load(ScriptedModel()).start()
    model.script(*[_answer] * (runs + WARM_UP_RUNS + 100))
    url = postgres.create_database(database) if CONFIGS[config][0] == "postgresql" else ""
    # No sandbox pool: text runs start no session, and a filling pool would take the CPU measured.
    servers = [
        replica(root / database / str(i) / "data", KEY, url, model, AGENTBOX_POOL_SIZE="0")
        for i in range(CONFIGS[config][1])
    ]
    try:
        start_all(servers)
        base_urls = [server.base_url for server in servers]
        with httpx.Client(base_url=base_urls[0], headers={"Authorization": f"Bearer {KEY}"}) as http:
            assistant_id = http.post("/assistants", json={"model": "m"}).raise_for_status().json()["id"]
        warm = Tally()
        asyncio.run(drive(base_urls, assistant_id, 0, WARM_UP_RUNS, min(clients, WARM_UP_RUNS), warm))
        tally = Tally(errors=warm.errors, examples=warm.examples)
        before, ticks_before = cpu_seconds(), machine_ticks()
        seconds = asyncio.run(drive(base_urls, assistant_id, WARM_UP_RUNS, runs, clients, tally))
        after, ticks_after = cpu_seconds(), machine_ticks()
        errors = [
            line.rstrip() for s in servers for line in s.output if "Traceback" in line or " ERROR " in line
        ]
    finally:
        stop_all(servers)
        model.stop()
    done = max(tally.completed, 1)
    cpu = {kind: (after[kind] - before.get(kind, 0.0)) / done for kind in after}
    busy = (ticks_after[0] - ticks_before[0]) / max(ticks_after[1] - ticks_before[1], 1)
    return Measured(config, tally.completed / seconds, tally.latencies, tally, errors, cpu, busy)


def measure(
    root: Path, runs: int, clients: int, rounds: int = 1, configs: list[str] | None = None
) -> tuple[list[Figure], list[str]]:
    """The figures of every configuration and the ratio of two replicas to one (PostgreSQL both),
    and what failed (empty: the bench passed)."""
    chosen = configs or list(CONFIGS)
    done: dict[str, list[Measured]] = {name: [] for name in chosen}
    failures: list[str] = []
    postgres = PostgresServer().start()
    try:
        for round_ in range(rounds):
            for i, name in enumerate(chosen):
                found = measure_one(root, postgres, name, f"bench_{round_}_{i}", runs, clients)
                done[name].append(found)
                cpu = ", ".join(
                    f"{kind} {seconds * 1000:.1f}" for kind, seconds in sorted(found.cpu_per_run.items())
                )
                print(
                    f"round {round_ + 1} [{name}]: {found.runs_per_s:.1f} runs/s; CPU ms per run: {cpu}; "
                    f"machine busy {found.machine_busy:.0%}",
                    file=sys.stderr,
                )
                missing = runs - found.tally.completed
                if found.tally.errors or missing or found.server_errors:
                    failures.append(
                        f"replicas [{name}]: {dict(found.tally.errors)}, {missing} of {runs} runs missing; "
                        f"{found.tally.examples + found.server_errors[:3]}"
                    )
    finally:
        postgres.stop()
    label = f" ({runs} runs, {clients} clients)"
    cpus = len(os.sched_getaffinity(0))
    figures: list[Figure] = []
    for name, measured in done.items():
        rates = [m.runs_per_s for m in measured]
        latencies = [s * 1000 for m in measured for s in m.latencies] or [float("nan")]
        requests = sum(m.tally.requests for m in measured)
        kinds = sorted({kind for m in measured for kind in m.cpu_per_run})
        figures += [
            Figure.of(f"replicas: completed runs per second{label} [{name}, {cpus} CPUs]", rates, "runs/s"),
            Figure.of(f"replicas: run latency{label} [{name}]", latencies),
            Figure("replicas: requests" + label + f" [{name}]", "count", requests, requests, len(measured)),
            *(
                Figure.of(
                    f"replicas: CPU per run, {kind}{label} [{name}]",
                    [m.cpu_per_run.get(kind, 0.0) * 1000 for m in measured],
                )
                for kind in kinds
            ),
            Figure.of(
                f"replicas: machine CPU busy{label} [{name}]", [m.machine_busy * 100 for m in measured], "%"
            ),
        ]
    one, two = "1 replica, PostgreSQL", "2 replicas, PostgreSQL"
    if done.get(one) and done.get(two):
        ratios = [b.runs_per_s / a.runs_per_s for a, b in zip(done[one], done[two], strict=True)]
        figures.append(
            Figure.of(f"replicas: 2 replicas / 1 replica throughput, PostgreSQL{label}", ratios, "x")
        )
    return figures, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.replicas", description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="the configurations take turns this often")
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: all three")
    parser.add_argument(
        "--out", type=Path, help="also write the figures here as JSON (bench/results/replicas.json)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentbox-replicas-") as scratch:
        figures, failures = measure(Path(scratch), args.runs, args.clients, args.rounds, args.config)
    for f in figures:
        print(f"{f.name}: {f.p50:.2f} / {f.p95:.2f} {f.unit} (n={f.n})")
    if args.out:
        settings = {"runs": args.runs, "clients": args.clients, "rounds": args.rounds}
        result = {"cpus": len(os.sched_getaffinity(0)), **settings, "figures": [f.as_dict() for f in figures]}
        args.out.write_text(json.dumps(result, indent=2))
    for line in failures:
        print("FAILED", line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
