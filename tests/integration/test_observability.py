"""What an operator sees: Prometheus metrics at /metrics and JSON log lines (AGENTBOX_LOG_FORMAT=json).

One real server in JSON mode with the scripted model; /metrics is read with prometheus_client's own
parser, and every line the server writes is read back as JSON. Counters are process-wide, so each
check compares a scrape after the work with one before it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.metrics_scrape import scrape, total, value
from tests.sandbox_fixtures import cell_seconds
from tests.scripted_model import Code, Fail, ScriptedModel, Slow, Text

pytestmark = pytest.mark.slow

CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture(scope="module")
def json_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("observability") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
        AGENTBOX_POOL_SIZE="1",
        AGENTBOX_LOG_FORMAT="json",
        AGENTBOX_METRICS_REQUIRE_KEY="true",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def client(json_server: LiveServer) -> Iterator[openai.OpenAI]:
    with json_server.sdk() as client:
        yield client


def json_lines(server: LiveServer) -> list[dict[str, Any]]:
    """Every line the server wrote but its readiness line (stdout), each parsed as JSON."""
    return [json.loads(line) for line in list(server.output) if "agentbox ready at" not in line]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Lines are read by a thread and a request's line is written as its answer ends: wait a little."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def test_metrics_count_runs_cells_sessions_and_model_errors(
    json_server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    before = scrape(json_server)
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])

    scripted_model.script(Code("print(6 * 7)"), Text("42"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "compute"}])
    done = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert done.status == "completed", done.last_error

    scripted_model.script(Fail(400, "the model refused"))
    failed = client.beta.threads.runs.create_and_poll(
        thread_id=client.beta.threads.create(messages=[{"role": "user", "content": "x"}]).id,
        assistant_id=assistant.id,
    )
    assert failed.status == "failed"

    scripted_model.script(Code("import os; os.kill(os.getpid(), 9)"), Text("it died"))
    killed = client.beta.threads.runs.create_and_poll(
        thread_id=client.beta.threads.create(messages=[{"role": "user", "content": "die"}]).id,
        assistant_id=assistant.id,
    )
    assert killed.status == "completed", killed.last_error

    scripted_model.script(Text("hello"))
    assert client.responses.create(model="m", input="hi").status == "completed"

    after = scrape(json_server)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("agentbox_runs_total", api="assistants", status="completed") == 2
    assert grew("agentbox_runs_total", api="assistants", status="failed") == 1
    assert grew("agentbox_runs_total", api="responses", status="completed") == 1
    assert grew("agentbox_cell_duration_seconds_count", status="ok") == 1
    assert grew("agentbox_cell_duration_seconds_count", status="killed") == 1
    assert grew("agentbox_cell_duration_seconds_sum") > 0
    assert grew("agentbox_sandbox_kills_total") == 1
    assert grew("agentbox_model_errors_total", kind="provider_error") == 1
    # Five turns answered (two per code run, one for the response), one refused.
    assert grew("agentbox_model_first_token_seconds_count") == 5
    assert grew("agentbox_model_call_seconds_count", outcome="ok") == 5
    assert grew("agentbox_model_call_seconds_count", outcome="error") == 1
    assert total(after, "agentbox_sandbox_starts_total") >= 2  # the pool's first and its refills
    # The two threads that ran code keep their sessions; the pool, asked for one, refills to one.
    assert value(after, "agentbox_sessions", state="live") >= 2
    assert value(after, "agentbox_pool_target") == 1
    wait_for(
        lambda: value(scrape(json_server), "agentbox_sessions", state="pooled") == 1, "the pool refilled"
    )
    # The process's own metrics come with the client library's default registry.
    assert value(after, "process_open_fds") > 0


def test_metrics_need_the_key_when_configured_so_and_are_open_by_default(
    json_server: LiveServer, live_server: LiveServer
) -> None:
    refused = httpx.get(f"{json_server.url}/metrics", timeout=30)
    assert refused.status_code == 401
    assert "API key" in refused.json()["error"]["message"]
    assert value(scrape(live_server, key=None), "agentbox_pool_target") >= 0
    assert ("agentbox_pool_target", frozenset()) in scrape(live_server, key=None)


def test_json_logs_a_line_per_request_and_per_transition(
    json_server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    scripted_model.script(Code("print('hi')"), Text("done"))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, extra_headers={"X-Request-ID": "req-observability"}
    )
    assert run.status == "completed", run.last_error
    scripted_model.script(Fail(400, "no such thing"))
    failed = client.responses.create(model="m", input="hi")
    assert failed.status == "failed"

    def transitions(key: str, id_: str) -> list[dict[str, Any]]:
        return [e for e in json_lines(json_server) if e.get("event") == "transition" and e.get(key) == id_]

    wait_for(lambda: len(transitions("run_id", run.id)) == 3, "the run's three transitions")
    steps = transitions("run_id", run.id)
    assert [(e["from"], e["to"]) for e in steps] == [
        (None, "queued"),
        ("queued", "in_progress"),
        ("in_progress", "completed"),
    ]
    assert {e["thread_id"] for e in steps} == {thread.id}
    assert {e["api"] for e in steps} == {"assistants"}

    wait_for(
        lambda: (
            transitions("response_id", failed.id)[-1:] != []
            and transitions("response_id", failed.id)[-1]["to"] == "failed"
        ),
        "the response's failure",
    )
    response_steps = transitions("response_id", failed.id)
    assert [e["to"] for e in response_steps] == ["in_progress", "failed"]
    assert "no such thing" in response_steps[-1]["reason"]

    def requests() -> list[dict[str, Any]]:
        return [e for e in json_lines(json_server) if e.get("event") == "request"]

    def created() -> list[dict[str, Any]]:
        return [e for e in requests() if e.get("request_id") == "req-observability" and e["method"] == "POST"]

    wait_for(lambda: len(created()) == 1, "the run's request")
    [created_line] = created()
    assert created_line["path"] == f"/v1/threads/{thread.id}/runs"
    assert created_line["status"] == 200
    assert created_line["duration_ms"] >= 0
    assert any(
        e["path"] == f"/v1/threads/{thread.id}/runs/{run.id}" and e["method"] == "GET" for e in requests()
    )
    # Every line parsed (json_lines would have raised); each says when, how bad, and who wrote it.
    assert all({"time", "level", "logger", "message"} <= set(e) for e in json_lines(json_server))


def test_a_cancelled_response_is_logged_and_counted(
    json_server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    before = scrape(json_server)
    scripted_model.script(Slow(30, Text("too late")))
    response = client.responses.create(model="m", input="wait", background=True)
    wait_for(lambda: client.responses.retrieve(response.id).status == "in_progress", "the response start")
    assert client.responses.cancel(response.id).status == "cancelled"

    changes = [
        e
        for e in json_lines(json_server)
        if e.get("event") == "transition" and e.get("response_id") == response.id
    ]
    assert [(e["from"], e["to"]) for e in changes] == [
        (None, "queued"),
        ("queued", "in_progress"),
        ("in_progress", "cancelled"),
    ]
    after = scrape(json_server)
    cancelled = {"api": "responses", "status": "cancelled"}
    assert (
        total(after, "agentbox_runs_total", **cancelled) - total(before, "agentbox_runs_total", **cancelled)
        == 1
    )
