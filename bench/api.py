"""HTTP-side figures: the engine's overhead around one code step, and throughput on this machine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text

from agentbox.sandbox.config import default_pool_size
from bench import checks
from bench.checks import Expected
from bench.sessions import session_pids
from bench.stats import Figure, ms

KEY = "sk-bench"


def _stream_run(client: httpx.Client, thread_id: str, assistant_id: str) -> str:
    """A streamed run to its end; its id. Raises unless the stream says it completed."""
    body = {"assistant_id": assistant_id, "stream": True}
    with client.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
        return str(checks.stream_run(response.read())["id"])


def run_overhead(
    client: httpx.Client, model: ScriptedModel, assistant_id: str, reps: int, checked: list[Expected]
) -> tuple[list[float], list[float]]:
    """One-step code runs on a warm thread: (total, total minus model time) per run, in seconds."""
    thread = client.post("/threads", json={}).json()["id"]
    totals, without_model = [], []
    for i in range(reps + 1):
        client.post(f"/threads/{thread}/messages", json={"role": "user", "content": checks.ask("print(1)")})
        model.reset()
        checks.serve_echo(model, 2)
        started = time.perf_counter()
        run = _stream_run(client, thread, assistant_id)
        elapsed = time.perf_counter() - started
        checked.append(Expected(thread, run, "print(1)", "1"))
        if i:  # the first run starts the thread's session
            totals.append(elapsed)
            without_model.append(elapsed - model.seconds_answering)
    return totals, without_model


async def get_throughput(base_url: str, assistant_id: str, total: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                response = await client.get(f"/assistants/{assistant_id}")
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)


def run_throughput(
    client: httpx.Client,
    model: ScriptedModel,
    assistant_id: str,
    seconds: float,
    width: int,
    checked: list[Expected],
) -> float:
    """Completed one-step runs per second, `width` warm threads running side by side. Each run of a
    thread runs the code of its one user message again (the model answers from the conversation)."""
    ask = {"messages": [{"role": "user", "content": checks.ask("print(7)")}]}
    threads = [client.post("/threads", json=ask).json()["id"] for _ in range(width)]
    model.reset()
    checks.serve_echo(model, 100_000)
    for thread in threads:  # warm each thread's session first
        checked.append(Expected(thread, _stream_run(client, thread, assistant_id), "print(7)", "7"))

    async def loop() -> int:
        done = 0
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient(
            base_url=str(client.base_url), headers=dict(client.headers), timeout=60
        ) as ac:

            async def worker(thread: str) -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    body = {"assistant_id": assistant_id, "stream": True}
                    async with ac.stream("POST", f"/threads/{thread}/runs", json=body) as response:
                        run = checks.stream_run(await response.aread())
                    checked.append(Expected(thread, str(run["id"]), "print(7)", "7"))
                    done += 1

            await asyncio.gather(*(worker(t) for t in threads))
        return done

    started = time.perf_counter()
    completed = asyncio.run(loop())
    return completed / (time.perf_counter() - started)


CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}
TWO_TURNS = (Code("x = 41"), Text("set"), Code("print(x + 1)"), Text("42"))


def responses_two_turns(
    client: httpx.Client, model: ScriptedModel, reps: int
) -> tuple[list[float], list[float]]:
    """A new conversation, two code-interpreter turns (the second reads the first's variable):
    (total, total minus model time) per conversation, in seconds."""
    totals, without_model = [], []
    for i in range(reps + 1):
        conversation = client.post("/conversations", json={}).json()["id"]
        model.reset()
        model.script(*TWO_TURNS)
        started = time.perf_counter()
        for text in ("set x", "x + 1?"):
            body = {"model": "m", "input": text, "conversation": conversation, "tools": [CODE_TOOL]}
            answer = client.post("/responses", json=body).json()
            if answer["status"] != "completed":
                raise RuntimeError(f"response did not complete: {answer}")
        elapsed = time.perf_counter() - started
        if answer["output"][-1]["content"][0]["text"] != "42":
            raise RuntimeError(f"unexpected answer: {answer['output']}")
        if i:  # the first one warms the pool's claim path and the SQLite pages
            totals.append(elapsed)
            without_model.append(elapsed - model.seconds_answering)
    return totals, without_model


def assistants_two_turns(
    client: httpx.Client, model: ScriptedModel, assistant_id: str, reps: int, checked: list[Expected]
) -> tuple[list[float], list[float]]:
    """The baseline: the same two turns as two runs on a new Assistants thread."""
    totals, without_model = [], []
    for i in range(reps + 1):
        thread = client.post("/threads", json={}).json()["id"]
        model.reset()
        model.script(*TWO_TURNS)
        started = time.perf_counter()
        runs = []
        for text in ("set x", "x + 1?"):
            client.post(f"/threads/{thread}/messages", json={"role": "user", "content": text})
            runs.append(_stream_run(client, thread, assistant_id))
        elapsed = time.perf_counter() - started
        checked.append(Expected(thread, runs[0], "x = 41", "", "set"))
        checked.append(Expected(thread, runs[1], "print(x + 1)", "42", "42"))
        if i:
            totals.append(elapsed)
            without_model.append(elapsed - model.seconds_answering)
    return totals, without_model


def first_event(
    client: httpx.Client, model: ScriptedModel, path: str, body: dict[str, object], reps: int
) -> list[float]:
    """Seconds from the request to the first server-sent event, for a streamed answer."""
    times = []
    for _ in range(reps):
        model.reset()
        model.script(Text("hello"))
        started = time.perf_counter()
        first = None
        whole = b""
        with client.stream("POST", path, json=body) as response:
            for chunk in response.iter_bytes():  # read to the end, so each request finishes its run
                if first is None and chunk.startswith(b"event:"):
                    first = time.perf_counter() - started
                whole += chunk
        if first is None:
            raise RuntimeError(f"no event from {path}")
        if b"event: thread.run.completed" not in whole and b"event: response.completed" not in whole:
            raise RuntimeError(f"{path} did not complete: {whole[-300:]!r}")
        times.append(first)
    return times


TRIVIAL = "print(1)"


def exec_stream(
    client: httpx.Client, container: str, reps: int
) -> tuple[list[float], list[float], list[float]]:
    """A trivial cell by the exec API, streamed, in a warm container: seconds from the request to the
    first byte, to the cell's first output delta, and to exec.completed."""
    first_byte, first_output, done = [], [], []
    for i in range(reps + 1):
        marks: dict[str, float] = {}
        started = time.perf_counter()
        body = {"code": TRIVIAL, "stream": True}
        with client.stream("POST", f"/containers/{container}/exec", json=body) as response:
            for chunk in response.iter_bytes():
                at = time.perf_counter() - started
                marks.setdefault("byte", at)
                if b"exec.output.delta" in chunk:
                    marks.setdefault("output", at)
                if b"exec.completed" in chunk:
                    marks.setdefault("done", at)
        if len(marks) != 3:
            raise RuntimeError(f"exec stream missed events: {marks}")
        if i:  # the first one starts the container's session
            first_byte.append(marks["byte"])
            first_output.append(marks["output"])
            done.append(marks["done"])
    return first_byte, first_output, done


def exec_json(client: httpx.Client, container: str, reps: int) -> list[float]:
    """The same cell without streaming: seconds from the request to the finished exec object."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        result = client.post(f"/containers/{container}/exec", json={"code": TRIVIAL}).json()
        times.append(time.perf_counter() - started)
        if result["stdout"] != "1\n":
            raise RuntimeError(f"unexpected exec result: {result}")
    return times


def responses_code_stream(
    client: httpx.Client, model: ScriptedModel, container: str, reps: int
) -> tuple[list[float], list[float], list[float]]:
    """The same cell through a streamed Responses call (the scripted model asks for it, then answers):
    seconds to the first byte, to the code call's completion, and to the end minus model time."""
    first_byte, code_done, net = [], [], []
    tool = {"type": "code_interpreter", "container": container}
    for i in range(reps + 1):
        model.reset()
        model.script(Code(TRIVIAL), Text("1"))
        marks: dict[str, float] = {}
        started = time.perf_counter()
        body = {"model": "m", "input": "print 1", "tools": [tool], "stream": True}
        with client.stream("POST", "/responses", json=body) as response:
            for chunk in response.iter_bytes():
                at = time.perf_counter() - started
                marks.setdefault("byte", at)
                if b"response.code_interpreter_call.completed" in chunk:
                    marks.setdefault("code", at)
                if b"event: response.completed" in chunk:
                    marks.setdefault("completed", at)
        total = time.perf_counter() - started
        if len(marks) != 3:
            raise RuntimeError(f"response stream missed events: {marks}")
        if i:
            first_byte.append(marks["byte"])
            code_done.append(marks["code"])
            net.append(total - model.seconds_answering)
    return first_byte, code_done, net


def wait_pool_full(data_dir: Path, size: int, timeout_s: float = 120) -> None:
    """Until the server's warm pool has started `size` sandboxes, then a second more: figures are
    taken at a quiet moment, not while the pool's fill still holds both cores."""
    sessions_dir = data_dir.resolve() / "sessions"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = [pids for pids in session_pids(sessions_dir).values() if len(pids) >= 3]
        if len(started) >= size:
            break
        time.sleep(0.1)
    time.sleep(1.0)


def measure(data_dir: Path, quick: bool, backend: str | None) -> list[Figure]:
    model = ScriptedModel().start()
    env = {"AGENTBOX_MODEL_BASE_URL": model.base_url}
    if backend:
        env["AGENTBOX_SANDBOX"] = backend
    server = LiveServer(data_dir, KEY, **env).start()
    wait_pool_full(data_dir, default_pool_size(backend or "bubblewrap", fork_server=True))
    label = f" [{backend or 'bubblewrap'}]"
    try:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        ) as client:
            assistant = client.post(
                "/assistants", json={"model": "m", "tools": [{"type": "code_interpreter"}]}
            ).json()
            checked: list[Expected] = []
            totals, net = run_overhead(client, model, assistant["id"], 3 if quick else 30, checked)
            gets = asyncio.run(get_throughput(server.base_url, assistant["id"], 200 if quick else 3000, 16))
            runs = run_throughput(
                client, model, assistant["id"], 2 if quick else 10, 2 if quick else 8, checked
            )
            reps = 3 if quick else 20
            conversation_total, conversation_net = responses_two_turns(client, model, reps)
            thread_total, thread_net = assistants_two_turns(client, model, assistant["id"], reps, checked)
            response_first = first_event(
                client, model, "/responses", {"model": "m", "input": "hi", "stream": True}, reps
            )
            thread = client.post("/threads", json={}).json()["id"]
            run_first = first_event(
                client,
                model,
                f"/threads/{thread}/runs",
                {"assistant_id": assistant["id"], "stream": True},
                reps,
            )
            container = client.post("/containers", json={"name": "bench"}).json()["id"]
            exec_byte, exec_output, exec_done = exec_stream(client, container, reps)
            exec_whole = exec_json(client, container, reps)
            code_byte, code_done, code_net = responses_code_stream(client, model, container, reps)
            checks.check_all(server.base_url, dict(client.headers), checked)
    finally:
        server.stop()
        model.stop()
    return [
        Figure.of("one-step run, total (warm session)" + label, ms(totals)),
        Figure.of("one-step run minus model time" + label, ms(net)),
        Figure("simple GETs per second" + label, "req/s", gets, gets, 1),
        Figure("completed one-step runs per second" + label, "runs/s", runs, runs, 1),
        Figure.of("Responses: two-turn code conversation, total" + label, ms(conversation_total)),
        Figure.of("Responses: two-turn code conversation minus model time" + label, ms(conversation_net)),
        Figure.of("baseline: the same two turns as Assistants runs, total" + label, ms(thread_total)),
        Figure.of("baseline: the same two turns as Assistants runs minus model time" + label, ms(thread_net)),
        Figure.of("Responses: stream → first event" + label, ms(response_first)),
        Figure.of("baseline: Assistants run stream → first event" + label, ms(run_first)),
        Figure.of("exec print(1), streamed → first byte" + label, ms(exec_byte)),
        Figure.of("exec print(1), streamed → its output" + label, ms(exec_output)),
        Figure.of("exec print(1), streamed → exec.completed" + label, ms(exec_done)),
        Figure.of("exec print(1), JSON → whole result" + label, ms(exec_whole)),
        Figure.of("baseline: Responses print(1), streamed → first byte" + label, ms(code_byte)),
        Figure.of("baseline: Responses print(1), streamed → code call completed" + label, ms(code_done)),
        Figure.of("baseline: Responses print(1), streamed → end, minus model time" + label, ms(code_net)),
    ]
