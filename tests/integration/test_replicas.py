"""Several `agentbox serve` replicas sharing one real PostgreSQL (AGENTBOX_DATABASE_URL): what one
stores the other reads and changes, a run made on one is followed on the other, the database keeps
one active run per thread whichever replica is asked, and replicas that start at once migrate once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.integration.test_function_tools import WEATHER, report
from tests.live_server import LiveServer
from tests.model_replies import function_call
from tests.postgres_server import PostgresServer
from tests.replicas import replica, start_all
from tests.scripted_model import Code, Hold, ScriptedModel, Text


@pytest.fixture(scope="module")
def replicas(
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    scripted_model_server: ScriptedModel,
) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = postgres_server.create_database("replicas")
    root = tmp_path_factory.mktemp("replicas")
    servers = [replica(root / name / "data", API_KEY, url, scripted_model_server) for name in ("a", "b")]
    try:
        a, b = start_all(servers)
        yield a, b
    finally:
        for server in servers:
            server.stop()


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_what_one_replica_stores_the_other_reads_and_changes(replicas: tuple[LiveServer, LiveServer]) -> None:
    a, b = (server.sdk() for server in replicas)
    assistant = a.beta.assistants.create(model="m", name="analyst", instructions="Be brief.")
    assert b.beta.assistants.retrieve(assistant.id).instructions == "Be brief."
    b.beta.assistants.update(assistant.id, instructions="Be thorough.")
    assert a.beta.assistants.retrieve(assistant.id).instructions == "Be thorough."

    thread = a.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    b.beta.threads.messages.create(thread.id, role="user", content="second")
    listed = a.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.content[0].text.value for m in listed] == ["first", "second"]  # type: ignore[union-attr]
    # Cursors are the database's: a page read on one replica continues on the other.
    first_page = a.beta.threads.messages.list(thread.id, order="asc", limit=1)
    rest = b.beta.threads.messages.list(thread.id, order="asc", after=first_page.data[0].id).data
    assert [m.content[0].text.value for m in rest] == ["second"]  # type: ignore[union-attr]

    assert b.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError, match=f"No thread found with id '{thread.id}'"):
        a.beta.threads.retrieve(thread.id)


def test_a_run_made_on_one_replica_is_followed_to_its_end_on_the_other(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    a, b = (server.sdk() for server in replicas)
    assistant = a.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = b.beta.threads.create(messages=[{"role": "user", "content": "what is 6 * 7?"}])
    scripted_model.script(Code("print(6 * 7)"), Text("It is 42."))
    run = a.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait_for(
        lambda: b.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "completed",
        "the run to complete, read on the other replica",
    )
    steps = b.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert [o.logs for o in call.code_interpreter.outputs] == ["42\n"]  # type: ignore[union-attr]
    answer = b.beta.threads.messages.list(thread.id).data[0]
    assert answer.content[0].text.value == "It is 42."  # type: ignore[union-attr]


def test_one_active_run_per_thread_whichever_replica_is_asked(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    sdk = replicas[0].sdk()
    assistant = sdk.beta.assistants.create(model="m")
    for attempt in range(5):
        thread = sdk.beta.threads.create(messages=[{"role": "user", "content": f"attempt {attempt}"}])
        won, refused = _race_for_a_run(replicas, thread.id, assistant.id, scripted_model)
        assert refused["error"]["message"] == f"Thread {thread.id} already has an active run {won}."
        assert refused["error"]["param"] == "thread_id"
        assert [run.id for run in sdk.beta.threads.runs.list(thread.id).data] == [won]


def _race_for_a_run(
    replicas: tuple[LiveServer, LiveServer], thread_id: str, assistant_id: str, model: ScriptedModel
) -> tuple[str, dict[str, Any]]:
    """Both replicas asked at the same moment for a run on the thread, while the model holds the
    one that starts; (the run that won, the refusal's body), once the won run has ended."""
    release = threading.Event()
    model.script(Hold("Thinking", release))
    start = threading.Barrier(2)

    def create_on(server: LiveServer) -> httpx.Response:
        with server.http() as http:
            start.wait()
            return http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id})

    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(create_on, replicas))
    finally:
        release.set()
    assert sorted(answer.status_code for answer in answers) == [200, 400], [a.text for a in answers]
    won = next(answer.json()["id"] for answer in answers if answer.status_code == 200)
    refused = next(answer.json() for answer in answers if answer.status_code == 400)
    with replicas[0].http() as http:
        _wait_for(
            lambda: http.get(f"/threads/{thread_id}/runs/{won}").json()["status"] in ("completed", "failed"),
            "the held run to end",
        )
    return won, refused


def test_replicas_that_start_at_once_migrate_once(
    postgres_server: PostgresServer, tmp_path: Path, scripted_model_server: ScriptedModel
) -> None:
    url = postgres_server.create_database("three_at_once")
    servers = [replica(tmp_path / str(n) / "data", API_KEY, url, scripted_model_server) for n in range(3)]
    try:
        start_all(servers)
        for server in servers:
            with server.http() as http:
                assert http.get("/assistants").json()["data"] == []
    finally:
        for server in servers:
            server.stop()
    assert postgres_server.query("three_at_once", "SELECT version_num FROM alembic_version") == [("0008",)]


def test_tool_outputs_sent_to_the_other_replica_resume_the_run_and_stream_from_there(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    owner, other = (server.sdk() for server in replicas)
    assistant = owner.beta.assistants.create(model="m", tools=[WEATHER])
    thread = owner.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    scripted_model.script(function_call("get_weather", json.dumps({"city": "Oslo"})), report)
    run = owner.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    _wait_for(
        lambda: (
            other.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "requires_action"
        ),
        "the run to wait for the client, seen on the other replica",
    )
    waiting = other.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError, match="unknown"):
        other.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": "call_wrong", "output": "x"}]
        )
    names, text = [], ""
    with other.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "12 C, rain"}]
    ) as stream:
        for event in stream:
            names.append(event.event)
            if event.event == "thread.message.delta":
                text += "".join(part.text.value for part in event.data.delta.content)  # type: ignore[union-attr]
    assert names[0] == "thread.run.in_progress" and names[-1] == "thread.run.completed", names
    assert text == "Weather: 12 C, rain"
    with pytest.raises(openai.BadRequestError, match="is not waiting for tool outputs"):
        other.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "again"}]
        )


def test_a_cancel_sent_to_the_other_replica_cancels_the_run(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    owner, other = (server.sdk() for server in replicas)
    assistant = owner.beta.assistants.create(model="m")
    thread = owner.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    release = threading.Event()
    scripted_model.script(Hold("Thinking", release))
    try:
        run = owner.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        _wait_for(lambda: len(scripted_model.requests) == 1, "the model call")
        assert other.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id).status == "cancelling"
        _wait_for(
            lambda: (
                other.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "cancelled"
            ),
            "the owner to cancel the run",
            timeout_s=10,
        )
    finally:
        release.set()
    steps = owner.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert {step.status for step in steps} <= {"cancelled"}


def test_a_background_response_streams_from_the_other_replica(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    owner, other = replicas
    scripted_model.script(Code("print(6 * 7)"), Text("It is 42."))
    response = owner.sdk().responses.create(
        model="m",
        input="6 * 7?",
        background=True,
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
    )
    streamed = []
    with (
        other.http() as http,
        http.stream("GET", f"/responses/{response.id}", params={"stream": "true"}) as sse,
    ):
        assert sse.status_code == 200
        for line in sse.iter_lines():
            if line.startswith("data: "):
                streamed.append(json.loads(line[len("data: ") :]))
    kinds = [event["type"] for event in streamed]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert [event["sequence_number"] for event in streamed] == list(range(len(streamed)))
    assert streamed[-1]["response"]["output"][-1]["content"][0]["text"] == "It is 42."


def test_a_background_response_cancelled_on_the_other_replica_ends_cancelled(
    replicas: tuple[LiveServer, LiveServer], scripted_model: ScriptedModel
) -> None:
    owner, other = (server.sdk() for server in replicas)
    release = threading.Event()
    scripted_model.script(Hold("Partial", release))
    try:
        response = owner.responses.create(model="m", input="slowly", background=True)
        _wait_for(lambda: len(scripted_model.requests) == 1, "the model call")
        assert other.responses.cancel(response.id).status == "cancelled"
    finally:
        release.set()
    assert owner.responses.retrieve(response.id).status == "cancelled"


LEASE_S = 10  # renewed every 3.3 s: room for a loaded machine (make test runs the VM beside two workers)
# to be late without peers taking over; 5 s lost a live run to a peer once there


@pytest.fixture
def short_leases(
    postgres_url: str, tmp_path: Path, scripted_model_server: ScriptedModel
) -> Iterator[list[LiveServer]]:
    """Two replicas with short leases (LEASE_S), for tests that kill or restart one."""
    lease = {"AGENTBOX_REPLICA_LEASE_S": str(LEASE_S)}
    servers = [
        replica(tmp_path / name / "data", API_KEY, postgres_url, scripted_model_server, **lease)
        for name in ("a", "b")
    ]
    try:
        yield start_all(servers)
    finally:
        for server in servers:
            server.stop()


def test_a_killed_replicas_run_is_ended_by_a_peer_once_its_lease_runs_out(
    short_leases: list[LiveServer], scripted_model: ScriptedModel
) -> None:
    doomed, survivor = short_leases
    on_doomed, on_survivor = doomed.sdk(), survivor.sdk()
    assistant = on_survivor.beta.assistants.create(model="m")
    thread = on_survivor.beta.threads.create(messages=[{"role": "user", "content": "slowly"}])
    release = threading.Event()
    scripted_model.script(Hold("Partial", release), Hold("Partial", release))
    try:
        run = on_doomed.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        response = on_doomed.responses.create(model="m", input="slowly", background=True)
        _wait_for(lambda: len(scripted_model.requests) == 2, "both model calls")
        doomed.kill()
        killed_at = time.monotonic()
        # The survivor's watch runs every third of a lease: the run ends within about 1⅓ leases.
        _wait_for(
            lambda: (
                on_survivor.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "failed"
            ),
            "the peer to end the dead replica's run",
            timeout_s=6 * LEASE_S,
        )
        noticed_s = time.monotonic() - killed_at
    finally:
        release.set()
    ended = on_survivor.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
    assert ended.last_error is not None
    assert ended.last_error.message == "The server restarted while this run was active."
    # No lower bound: the lease is as fresh as its last renewal, which a loaded machine delays.
    assert noticed_s <= 3 * LEASE_S, noticed_s
    _wait_for(lambda: on_survivor.responses.retrieve(response.id).status == "failed", "the response to end")
    # The thread takes runs again, on the survivor.
    scripted_model.script(Text("Back."))
    again = on_survivor.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed"
    assert on_survivor.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "Back."  # type: ignore[union-attr]


def test_a_restarting_replica_leaves_its_peers_live_run_alone(
    short_leases: list[LiveServer], scripted_model: ScriptedModel
) -> None:
    restarting, working = short_leases
    sdk = working.sdk()
    assistant = sdk.beta.assistants.create(model="m")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    release = threading.Event()
    scripted_model.script(Hold("Still", release))
    try:
        run = sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        _wait_for(lambda: len(scripted_model.requests) == 1, "the model call")
        restarting.stop()
        restarting.start()  # its start-up recovery runs before it says ready
        time.sleep(LEASE_S)  # and its watch runs meanwhile
        assert sdk.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "in_progress"
    finally:
        release.set()
    # Its own replica carried it on to its own end (the stalled answer, cut when released), not
    # the restart's.
    _wait_for(
        lambda: (
            sdk.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status
            not in ("queued", "in_progress")
        ),
        "the run to end on its own replica",
    )
    ended = sdk.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
    assert ended.status == "failed" and ended.last_error is not None
    assert ended.last_error.message.startswith("The model's answer was cut off"), ended.last_error
