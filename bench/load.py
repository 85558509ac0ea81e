"""Load: many runs from many concurrent clients against the real server, every run checked.

    python -m bench.load [--runs 1000] [--clients 200] [--config current|previous ...]

Each client is a client of its own (its own connection pool) and works through a mix: it uploads a
file and creates a thread and run with it attached, polling the run; streams runs on that thread;
creates and runs a second thread streamed; and polls a run on it. Each run executes its own code
(bench/checks.py), and after the load every run is checked: completed, its code step with the
expected output, its message. Any 5xx, any request left without an HTTP answer (reset, closed,
timed out), any failed or wrong run fails the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.live_server import LiveServer
from tests.scripted_model import ScriptedModel

from bench import checks
from bench.checks import Expected
from bench.stats import Figure, percentile

KEY = "sk-bench-load"
# The server's concurrency settings: as the server runs now, and as it ran before issue 13
# (uvicorn's 5 s keep-alive, the same as the clients' own idle expiry; see BENCHMARKS.md).
CONFIGS = {"current": {}, "previous": {"AGENTBOX_KEEP_ALIVE_S": "5"}}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    expected: list[Expected] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)
    requests: int = 0

    def fail(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")


class Client:
    """One client of the load: its own httpx client, counting every request."""

    def __init__(self, base_url: str, tally: Tally, assistant_id: str) -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        self.http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300)
        self.tally = tally
        self.assistant_id = assistant_id

    async def call(self, method: str, path: str, **options: object) -> httpx.Response:
        self.tally.requests += 1
        response = await self.http.request(method, path, **options)  # type: ignore[arg-type]
        return response.raise_for_status()

    async def stream(self, path: str, body: dict[str, object]) -> dict[str, object]:
        self.tally.requests += 1
        async with self.http.stream("POST", path, json=body) as response:
            response.raise_for_status()
            return checks.stream_run(await response.aread())

    async def poll(self, response: httpx.Response) -> dict[str, object]:
        """As the SDKs' create_and_poll: again after the server's openai-poll-after-ms, until final."""
        run = response.json()
        while run["status"] in ("queued", "in_progress", "cancelling"):
            await asyncio.sleep(int(response.headers.get("openai-poll-after-ms", 1000)) / 1000)
            response = await self.call("GET", f"/threads/{run['thread_id']}/runs/{run['id']}")
            run = response.json()
        if run["status"] != "completed":
            raise RuntimeError(f"run {run['id']} ended {run['status']}: {run.get('last_error')}")
        return run

    async def timed(self, kind: str, code: str, output: str, start: object) -> str:
        began = time.perf_counter()
        run: dict[str, object] = await start  # type: ignore[misc]
        self.tally.latencies.append(time.perf_counter() - began)
        self.tally.by_kind[kind].append(time.perf_counter() - began)
        self.tally.expected.append(Expected(str(run["thread_id"]), str(run["id"]), code, output))
        return str(run["thread_id"])

    async def upload_and_run(self, n: int) -> str:
        token = f"token-{n}-{random.getrandbits(32):08x}"
        files = {"file": (f"in_{n}.txt", token.encode(), "text/plain")}
        uploaded = (await self.call("POST", "/files", files=files, data={"purpose": "assistants"})).json()
        code = f"print(open('/mnt/data/in_{n}.txt').read())"
        attach = [{"file_id": uploaded["id"], "tools": [{"type": "code_interpreter"}]}]
        body = {
            "assistant_id": self.assistant_id,
            "thread": {"messages": [{"role": "user", "content": checks.ask(code), "attachments": attach}]},
        }

        async def start() -> dict[str, object]:
            return await self.poll(await self.call("POST", "/threads/runs", json=body))

        return await self.timed("upload + create-and-run, polled", code, token, start())

    async def create_and_stream(self, code: str, output: str) -> str:
        body = {
            "assistant_id": self.assistant_id,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": checks.ask(code)}]},
        }
        return await self.timed("create-and-run, streamed", code, output, self.stream("/threads/runs", body))

    async def run_on(self, thread: str, code: str, output: str, stream: bool) -> str:
        async def start() -> dict[str, object]:
            message = {"role": "user", "content": checks.ask(code)}
            await self.call("POST", f"/threads/{thread}/messages", json=message)
            body = {"assistant_id": self.assistant_id, "stream": stream}
            if stream:
                return await self.stream(f"/threads/{thread}/runs", body)
            return await self.poll(await self.call("POST", f"/threads/{thread}/runs", json=body))

        kind = "run on a thread, " + ("streamed" if stream else "polled")
        return await self.timed(kind, code, output, start())

    async def work(self, n: int, runs: int) -> None:
        """`runs` runs of the mix, in order: upload + create-and-run (polled), a streamed run on that
        thread, a streamed create-and-run, a streamed run on the first thread, a polled one on the second."""
        first = second = ""
        for step in range(runs):
            kind = step % 5
            value = n * 1000 + step
            if kind == 0:
                first = await self.upload_and_run(n)
            elif kind == 1 or kind == 3:
                await self.run_on(first, f"print({value} * 7)", str(value * 7), stream=True)
            elif kind == 2:
                second = await self.create_and_stream(f"print('c{value}')", f"c{value}")
            else:
                await self.run_on(second, f"print(sum([{value}, 1]))", str(value + 1), stream=False)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__  # RemoteProtocolError, ReadError, ConnectError, ReadTimeout, RuntimeError …


async def drive(base_url: str, assistant_id: str, runs: int, clients: int, tally: Tally) -> float:
    """Every client at once; returns the wall time until the last one finished."""
    per_client = [runs // clients + (1 if i < runs % clients else 0) for i in range(clients)]

    async def one(n: int) -> None:
        client = Client(base_url, tally, assistant_id)
        try:
            await client.work(n, per_client[n])
        except Exception as exc:  # the rest of this client's plan depends on what failed
            tally.fail(_kind(exc), f"client {n}: {exc!r}")
        finally:
            await client.http.aclose()

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(clients)))
    return time.perf_counter() - began


async def verify(base_url: str, tally: Tally) -> None:
    """Every run it started: completed with the steps it should have (after the load)."""
    for exc in await checks.check_runs(base_url, {"Authorization": f"Bearer {KEY}"}, tally.expected):
        tally.fail("wrong run" if isinstance(exc, RuntimeError) else _kind(exc), repr(exc))


async def come_back(base_url: str, clients: int, rounds: int, tally: Tally) -> None:
    """The burst that once saw a reset: `clients` clients each sending a request, then again after
    an idle 4.9-5.0 s, just inside their own keep-alive expiry (httpx's and openai-python's: 5 s)."""
    headers = {"Authorization": f"Bearer {KEY}"}

    async def one() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
            for _ in range(rounds + 1):
                tally.requests += 1
                try:
                    (await http.get("/models")).raise_for_status()
                except Exception as exc:
                    tally.fail(_kind(exc), repr(exc))
                await asyncio.sleep(random.uniform(4.9, 5.0))

    await asyncio.gather(*(one() for _ in range(clients)))


def start_servers(data_dir: Path, config: dict[str, str], runs: int) -> tuple[ScriptedModel, LiveServer]:
    model = ScriptedModel().start()
    # socketserver listens with a backlog of 5 and answers HTTP/1.0 (a connection per request):
    # hundreds of runs asking at once would see SYNs dropped and retried a second later.
    model._server.socket.listen(1024)
    checks.serve_echo(model, 2 * runs + 100)
    env = {"AGENTBOX_MODEL_BASE_URL": model.base_url, **config}
    return model, LiveServer(data_dir, KEY, **env).start()


def load(
    data_dir: Path, config: dict[str, str], runs: int, clients: int, returning: int, rounds: int = 2
) -> tuple[Tally, float, Tally]:
    """The load's tally and seconds, then the tally of `returning` clients coming back after an idle."""
    model, server = start_servers(data_dir, config, runs)
    try:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            assistant = http.post("/assistants", json={"model": "m", "tools": [{"type": "code_interpreter"}]})
            assistant_id = assistant.raise_for_status().json()["id"]
        tally = Tally()
        seconds = asyncio.run(drive(server.base_url, assistant_id, runs, clients, tally))
        asyncio.run(verify(server.base_url, tally))
        idle = Tally()
        asyncio.run(come_back(server.base_url, returning, rounds, idle))
        server_errors = [line for line in server.output if "Traceback" in line or " ERROR " in line]
        for line in server_errors[:3]:
            tally.fail("server log", line)
    finally:
        server.stop()
        model.stop()
    return tally, seconds, idle


def figures(name: str, tally: Tally, seconds: float, idle: Tally, runs: int, clients: int) -> list[Figure]:
    done = len(tally.latencies)
    label = f" ({runs} runs, {clients} clients) [{name} config]"
    p99 = percentile(tally.latencies, 0.99) * 1000
    failed, idle_failed = sum(tally.errors.values()), sum(idle.errors.values())
    kinds = [
        Figure.of(f"load: {kind}" + label, [s * 1000 for s in times]) for kind, times in tally.by_kind.items()
    ]
    return [
        Figure("load: completed runs per second" + label, "runs/s", done / seconds, done / seconds, done),
        Figure.of("load: run latency" + label, [s * 1000 for s in tally.latencies or [float("nan")]]),
        Figure("load: run latency p99" + label, "ms", p99, p99, done),
        Figure("load: requests failed or unanswered" + label, "count", failed, failed, tally.requests),
        *kinds,
        Figure(
            f"clients back after a 4.9-5.0 s idle: requests failed or unanswered [{name} config]",
            "count", idle_failed, idle_failed, idle.requests,
        ),
    ]  # fmt: skip


def measure(
    root: Path, runs: int, clients: int, configs: list[str], returning: int = 300, rounds: int = 2
) -> tuple[list[Figure], list[str]]:
    """The figures per configuration, and what failed with the current one (empty: the bench
    passed); the previous configuration's failures are its figures, not the bench's."""
    out: list[Figure] = []
    failures: list[str] = []
    for name in configs:
        tally, seconds, idle = load(root / f"load-{name}", CONFIGS[name], runs, clients, returning, rounds)
        out += figures(name, tally, seconds, idle, runs, clients)
        missing = runs - len(tally.latencies)
        if name == "current" and (tally.errors or idle.errors or missing):
            failures.append(
                f"{dict(tally.errors + idle.errors)}, {missing} of {runs} runs missing; "
                f"{tally.examples + idle.examples}"
            )
    return out, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.load", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--returning", type=int, default=300, help="clients coming back after an idle")
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="default: both")
    args = parser.parse_args(argv)
    configs = args.config or ["previous", "current"]
    with tempfile.TemporaryDirectory(prefix="agentbox-load-") as scratch:
        out, failures = measure(Path(scratch), args.runs, args.clients, configs, args.returning)
    for f in out:
        print(f"{f.name}: {f.p50:.1f} / {f.p95:.1f} {f.unit} (n={f.n})")
    for line in failures:
        print("FAILED", line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
