"""Two replicas on one PostgreSQL under load: 100 runs at once, every request sent to one replica or
the other, and not one answer a 5xx.

Each run's thread and message are made on one replica, the run on the other, polled on both in turn
and its answer read on either. The model answers from the conversation, not from a queue, so runs
in flight at once each get their own answer: most only talk, a few run code first.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.postgres_server import PostgresServer
from tests.replicas import model_for_load, replica, start_all, stop_all
from tests.scripted_model import Answer, Code, Messages, ScriptedModel, Text, last_tool_output

RUNS = 100
CODE_EVERY = 10
"""Every tenth run runs code (a sandbox on the replica that owns the run); the rest only talk."""
WORKERS = 25
RUN_TIMEOUT_S = 120
_ASKED = re.compile(r"load (\d+) (talk|code)")


def _answer(messages: Messages) -> Answer:
    """Code runs print n * 7 and then say what it printed; talk runs say their number back."""
    if messages[-1].get("role") == "tool":
        return Text(f"printed {last_tool_output(messages).strip()}")
    user = next(m for m in reversed(messages) if m.get("role") == "user")
    asked = _ASKED.search(json.dumps(user.get("content")))
    assert asked is not None, f"not a message of this test: {user}"
    n, kind = int(asked.group(1)), asked.group(2)
    return Code(f"print({n} * 7)") if kind == "code" else Text(f"answer {n}")


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    # A model of its own: no other test's reset can empty its script mid-load.
    scripted = model_for_load(ScriptedModel()).start()
    scripted.script(*[_answer] * (RUNS + RUNS // CODE_EVERY + 20))
    yield scripted
    scripted.stop()


@pytest.fixture(scope="module")
def replicas(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory, model: ScriptedModel
) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = postgres_server.create_database("replicas_load")
    root = tmp_path_factory.mktemp("replicas_load")
    servers = [
        replica(root / name / "data", API_KEY, url, model, AGENTBOX_POOL_SIZE="2") for name in ("a", "b")
    ]
    try:
        a, b = start_all(servers)
        yield a, b
    finally:
        stop_all(servers)


@dataclass(frozen=True)
class Answered:
    replica: str
    method: str
    path: str
    status: int
    body: str


class Recorder:
    """Every HTTP answer of the load, whichever client and replica it came from."""

    def __init__(self) -> None:
        self.answers: list[Answered] = []
        self._lock = threading.Lock()

    def client(self, server: LiveServer, name: str) -> httpx.Client:
        def record(response: httpx.Response) -> None:
            body = response.read().decode(errors="replace") if response.status_code >= 400 else ""
            answer = Answered(
                name, response.request.method, response.request.url.path, response.status_code, body
            )
            with self._lock:
                self.answers.append(answer)

        http = server.http(timeout_s=RUN_TIMEOUT_S)
        http.event_hooks["response"].append(record)
        return http


@dataclass(frozen=True)
class Outcome:
    n: int
    status: str
    answer: str
    logs: str | None


def _one_run(
    n: int, servers: tuple[LiveServer, LiveServer], assistants: dict[str, str], rec: Recorder
) -> Outcome:
    kind = "code" if n % CODE_EVERY == 0 else "talk"
    i, j = (0, 1) if n % 2 == 0 else (1, 0)  # the thread on one replica, the run on the other
    with rec.client(servers[i], "ab"[i]) as one, rec.client(servers[j], "ab"[j]) as other:
        thread = one.post("/threads", json={}).raise_for_status().json()["id"]
        message = {"role": "user", "content": f"load {n} {kind}"}
        one.post(f"/threads/{thread}/messages", json=message).raise_for_status()
        run = other.post(
            f"/threads/{thread}/runs", json={"assistant_id": assistants[kind]}
        ).raise_for_status()
        run_id = run.json()["id"]
        deadline = time.monotonic() + RUN_TIMEOUT_S
        status = run.json()["status"]
        polls = 0
        while status in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.1)
            polls += 1
            http = one if polls % 2 else other
            status = http.get(f"/threads/{thread}/runs/{run_id}").raise_for_status().json()["status"]
        reader = one if n % 4 < 2 else other
        messages = (
            reader.get(f"/threads/{thread}/messages", params={"order": "desc"}).raise_for_status().json()
        )
        newest = messages["data"][0]
        answer = newest["content"][0]["text"]["value"] if newest["role"] == "assistant" else ""
        logs = None
        if kind == "code":
            steps = other.get(f"/threads/{thread}/runs/{run_id}/steps", params={"order": "asc"})
            calls = [c for s in steps.raise_for_status().json()["data"] if s["type"] == "tool_calls"
                     for c in s["step_details"]["tool_calls"]]  # fmt: skip
            logs = "".join(o.get("logs", "") for c in calls for o in c["code_interpreter"]["outputs"])
    return Outcome(n, status, answer, logs)


def _server_errors(servers: tuple[LiveServer, LiveServer]) -> list[str]:
    return [
        f"{name}: {line.rstrip()}"
        for name, server in zip("ab", servers, strict=True)
        for line in server.output
        if "Traceback" in line or " ERROR " in line
    ]


def test_two_replicas_take_100_concurrent_runs_without_a_5xx(replicas: tuple[LiveServer, LiveServer]) -> None:
    rec = Recorder()
    with rec.client(replicas[0], "a") as a, rec.client(replicas[1], "b") as b:
        talk = a.post("/assistants", json={"model": "m"}).raise_for_status().json()["id"]
        code_tools = [{"type": "code_interpreter"}]
        code = b.post("/assistants", json={"model": "m", "tools": code_tools}).raise_for_status().json()["id"]
    assistants = {"talk": talk, "code": code}

    def one(n: int) -> Outcome | BaseException:
        try:
            return _one_run(n, replicas, assistants, rec)
        except Exception as exc:  # collected: the 5xx check below says more than the first failure
            return exc

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(one, range(RUNS)))

    server_errors = [
        f"{x.replica} {x.method} {x.path} → {x.status} {x.body[:300]}" for x in rec.answers if x.status >= 500
    ]
    assert not server_errors, "\n".join(server_errors[:10] + _server_errors(replicas)[:40])
    failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    refused = [
        f"{x.replica} {x.method} {x.path} → {x.status} {x.body[:300]}" for x in rec.answers if x.status >= 400
    ]
    assert not failed, "\n".join(failed[:10] + refused[:10])
    ran = [o for o in outcomes if isinstance(o, Outcome)]
    assert [o.status for o in ran] == ["completed"] * RUNS, [o for o in ran if o.status != "completed"][:5]
    for o in ran:
        if o.n % CODE_EVERY == 0:
            assert (o.logs, o.answer) == (f"{o.n * 7}\n", f"printed {o.n * 7}"), o
        else:
            assert o.answer == f"answer {o.n}", o
    assert len(rec.answers) >= RUNS * 5, "every run is at least five requests"
    assert not _server_errors(replicas), "\n".join(_server_errors(replicas)[:40])
