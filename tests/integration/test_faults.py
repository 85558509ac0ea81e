"""Faults around a run: the database locked by another process under many writers, and a model
endpoint that answers garbage, is slow or is down (test_providers.py has the provider client's rules,
runs that time out or are cut, and a Responses call cut mid-stream).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import Chunks, Fail, Raw, ScriptedModel, Slow, Text

# Holds SQLite's write lock on the database, as a backup tool or a second writer would.
HOLD_WRITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


@contextlib.contextmanager
def hold_write_lock(server: LiveServer, seconds: float) -> Iterator[None]:
    """Another process holds the database's write lock for `seconds` from entry."""
    database = str(server.data_dir / "agentbox.sqlite3")
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, database, str(seconds)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
        assert holder.stdout.readline() == "released\n"
    assert holder.returncode == 0


def _ok_or_busy(response: httpx.Response) -> bool:
    """A write either landed or was refused as busy with a time to come back."""
    if response.status_code == 200:
        return True
    return response.status_code in (429, 503) and "retry-after" in response.headers


def test_many_writers_and_a_locked_database_lose_nothing(
    live_server: LiveServer, scripted_model: ScriptedModel, http: httpx.Client
) -> None:
    assistant = http.post("/assistants", json={"model": "m"}).json()
    thread = http.post("/threads", json={}).json()
    scripted_model.script(*[Text("ok")] * 30)

    def message(i: int) -> httpx.Response:
        return http.post(f"/threads/{thread['id']}/messages", json={"role": "user", "content": f"note {i}"})

    def upload(i: int) -> httpx.Response:
        return http.post(
            "/files",
            data={"purpose": "assistants"},
            files={"file": (f"f{i}.txt", f"bytes of {i}\n".encode())},
        )

    def run(i: int) -> httpx.Response:
        body = {
            "assistant_id": assistant["id"],
            "thread": {"messages": [{"role": "user", "content": f"q{i}"}]},
        }
        return http.post("/threads/runs", json=body)

    writes: list[tuple[Callable[[int], httpx.Response], int]] = [
        *((message, i) for i in range(40)),
        *((upload, i) for i in range(30)),
        *((run, i) for i in range(30)),
    ]
    with hold_write_lock(live_server, 1.5), ThreadPoolExecutor(len(writes)) as pool:
        answers = list(pool.map(lambda write: write[0](write[1]), writes))

    refused = [(a.status_code, a.text) for a in answers if not _ok_or_busy(a)]
    assert refused == []
    landed = [
        (write, a.json()) for (write, _), a in zip(writes, answers, strict=True) if a.status_code == 200
    ]
    # The writers waited for the lock rather than being turned away.
    assert len(landed) == len(writes)

    listed = http.get(f"/threads/{thread['id']}/messages", params={"limit": 100, "order": "asc"}).json()
    notes = sorted(m["content"][0]["text"]["value"] for m in listed["data"])
    assert notes == sorted(f"note {i}" for i in range(40))
    for write, body in landed:
        if write is upload:
            name = body["filename"]
            assert http.get(f"/files/{body['id']}/content").content == f"bytes of {name[1:-4]}\n".encode()
    for write, body in landed:
        if write is run:
            assert _final(http, body)["status"] == "completed"


def test_a_lock_held_past_the_busy_timeout_gets_503_with_retry_after(
    live_server: LiveServer, http: httpx.Client
) -> None:
    """SQLite waits 5 s for a lock (busy_timeout); past that a write is refused as busy, never a 500."""
    thread = http.post("/threads", json={}).json()

    def message(i: int) -> httpx.Response:
        return http.post(f"/threads/{thread['id']}/messages", json={"role": "user", "content": f"m{i}"})

    with hold_write_lock(live_server, 7), ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(message, range(10)))
    assert [(a.status_code, a.text) for a in answers if not _ok_or_busy(a)] == []
    busy = [a for a in answers if a.status_code == 503]
    assert busy, "the lock outlasted the busy timeout: some writes must have been refused"
    assert (
        busy[0].json()["error"]["message"] == "The database is busy with another writer; retry the request."
    )
    landed = {a.json()["id"] for a in answers if a.status_code == 200}
    listed = http.get(f"/threads/{thread['id']}/messages", params={"limit": 100}).json()["data"]
    assert {m["id"] for m in listed} == landed  # a refused write left nothing behind
    assert message(10).status_code == 200  # the lock gone, writes land again


def _final(http: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    pause = threading.Event()
    for _ in range(1200):
        current: dict[str, Any] = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").json()
        if current["status"] not in ("queued", "in_progress"):
            return current
        pause.wait(0.05)
    raise AssertionError(f"run {run['id']} is still {current['status']}")


# -- a model endpoint that answers garbage -----------------------------------------------------------

CHUNK_BASE = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m"}


def _text_chunk(text: str) -> dict[str, Any]:
    return {**CHUNK_BASE, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


GARBAGE = {
    "html instead of a completion": (
        Fail(200, body="<html><body>Gateway says hello</body></html>"),
        "answered something that is not a chat completion: <html><body>Gateway says hello",
    ),
    "a page as an event stream": (
        Raw("<html>\n<body>Bad gateway</body>\n</html>\n"),
        "ended its stream without answering. It sent: <html> <body>Bad gateway</body> </html>",
    ),
    "a stream of broken JSON": (
        Raw('data: {"choices": [{"delta": {"content": "Hel\n\ndata: lo"}]}\n\ndata: [DONE]\n\n'),
        'sent a stream chunk that is not a JSON object: {"choices": [{"delta": {"content": "Hel',
    ),
    "a broken chunk amid good ones": (
        Raw(
            "".join(
                f"data: {piece}\n\n"
                for piece in (
                    httpx.Response(200, json=_text_chunk("The answer ")).text,
                    "{not json at all",
                    httpx.Response(200, json=_text_chunk("is 42.")).text,
                    "[DONE]",
                )
            )
        ),
        "sent a stream chunk that is not a JSON object: {not json at all",
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_from_the_model_fails_the_run_saying_what_came(
    client: openai.OpenAI, scripted_model: ScriptedModel, case: str
) -> None:
    reply, said = GARBAGE[case]
    scripted_model.script(*[reply] * 4)  # each of the turn's 4 tries gets the same garbage
    assistant = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "what is 6 * 7?"}])
    done = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert done.status == "failed" and done.last_error is not None
    assert done.last_error.code == "server_error" and said in done.last_error.message
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=done.id).data
    assert all(s.status != "in_progress" for s in steps)
    messages = client.beta.threads.messages.list(thread_id=thread.id).data
    assert all(m.status != "in_progress" for m in messages)

    scripted_model.reset()
    scripted_model.script(*[reply] * 4)
    response = client.responses.create(model="m", input="what is 6 * 7?")
    assert response.status == "failed" and response.error is not None
    assert said in response.error.message
    assert all(getattr(item, "status", "completed") != "in_progress" for item in response.output)

    scripted_model.reset()
    scripted_model.script(Text("42"))  # the thread runs again once the model answers sense
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed", again.last_error


def test_a_stream_whose_chunks_are_not_chat_chunks_fails_the_run(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    """Valid JSON of the wrong shape (no choices) and no finish: the run fails, nothing in progress."""
    wrong = Chunks([{"hello": "world"}, {"choices": "nope"}], done=True)
    scripted_model.script(*[wrong] * 4)
    assistant = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    done = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert done.status == "failed" and done.last_error is not None
    assert done.last_error.message == (
        "The model provider 'default' ended its stream without answering. "
        'It sent: {"hello": "world"} {"choices": "nope"} (after 4 tries)'
    )
    assert all(m.status != "in_progress" for m in client.beta.threads.messages.list(thread_id=thread.id).data)


# -- a model endpoint slow or down, for a Responses call too (test_providers.py covers runs) -------------


def test_a_slow_then_down_model_fails_runs_and_responses_naming_why(tmp_path: Path) -> None:
    model = ScriptedModel().start()
    env = {"AGENTBOX_MODEL_BASE_URL": model.base_url, "AGENTBOX_MODEL_TIMEOUT_S": "1"}
    server = LiveServer(tmp_path / "data", API_KEY, **env).start()
    try:
        with server.sdk() as client:
            assistant = client.beta.assistants.create(model="m")
            model.script(Slow(3, Text("too late")))
            response = client.responses.create(model="m", input="hi")
            assert response.status == "failed" and response.error is not None
            assert response.error.message.startswith("The model endpoint did not answer within 1 s")

            model.stop()  # down: nothing listens at its address any more
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
            done = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            assert done.status == "failed" and done.last_error is not None
            reached = (
                f"The model provider 'default' could not be reached at {model.base_url}/chat/completions"
            )
            assert done.last_error.message.startswith(reached)
            response = client.responses.create(model="m", input="hi")
            assert response.status == "failed" and response.error is not None
            assert response.error.message.startswith(reached)
            assert all(getattr(item, "status", "completed") != "in_progress" for item in response.output)
    finally:
        server.stop()
