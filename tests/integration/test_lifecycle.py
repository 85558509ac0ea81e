"""Server lifecycle: no model configured, restarts keep every object, listings page correctly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text


def test_without_a_model_runs_fail_at_once_saying_how_to_configure(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", API_KEY).start()
    try:
        with server.sdk() as client:
            assistant = client.beta.assistants.create(
                model="gpt-4o-mini", tools=[{"type": "code_interpreter"}]
            )
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
    finally:
        server.stop()
    assert run.status == "failed"
    assert run.last_error is not None and "AGENTBOX_MODEL_BASE_URL" in run.last_error.message


def test_restart_keeps_files_assistants_threads_messages_runs_and_steps(
    tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    env = {"AGENTBOX_MODEL_BASE_URL": scripted_model.base_url}
    server = LiveServer(tmp_path / "data", API_KEY, **env).start()
    try:
        with server.sdk() as client:
            uploaded = client.files.create(file=("notes.txt", b"kept bytes\n"), purpose="assistants")
            assistant = client.beta.assistants.create(
                model="m",
                tools=[{"type": "code_interpreter"}],
                tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}},
            )
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "read it"}])
            scripted_model.script(Code("print(open('notes.txt').read())"), Text("It says: kept bytes"))
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            assert run.status == "completed", run.last_error
    finally:
        server.stop()

    server.start()
    try:
        with server.sdk() as client:
            assert client.files.content(uploaded.id).read() == b"kept bytes\n"
            assert client.beta.assistants.retrieve(assistant.id).tool_resources.code_interpreter.file_ids == [  # type: ignore[union-attr]
                uploaded.id
            ]
            messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
            assert [m.role for m in messages] == ["user", "assistant"]
            assert client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id).status == "completed"
            steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
            logs = steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs  # type: ignore[union-attr]
            assert logs.strip() == "kept bytes"
    finally:
        server.stop()


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_listing_pages_through_everything_once(live_server: LiveServer, order: str) -> None:
    with live_server.sdk() as client:
        thread = client.beta.threads.create()
        made = [
            client.beta.threads.messages.create(thread_id=thread.id, role="user", content=f"m{i}").id
            for i in range(7)
        ]
        first = client.beta.threads.messages.list(thread_id=thread.id, limit=3, order=order)  # type: ignore[arg-type]
        assert first.has_more is True and len(first.data) == 3
        seen = [m.id for m in client.beta.threads.messages.list(thread_id=thread.id, limit=3, order=order)]  # type: ignore[arg-type]
    assert seen == (made if order == "asc" else made[::-1])


def test_a_run_past_its_expiry_ends_expired(tmp_path: Path, scripted_model: ScriptedModel) -> None:
    env = {"AGENTBOX_MODEL_BASE_URL": scripted_model.base_url, "AGENTBOX_RUN_EXPIRES_S": "2"}
    server = LiveServer(tmp_path / "data", API_KEY, **env).start()
    try:
        with server.sdk() as client:
            assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow"}])
            scripted_model.script(Code("import time\ntime.sleep(30)"), Text("never"))
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
            )
            assert run.status == "expired"
            assert run.expires_at is None  # only an active run shows when it will expire
            (step,) = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
            assert step.status == "expired"
            # The thread is free again and its session answers at once: the cell was interrupted.
            scripted_model.reset()
            scripted_model.script(Code("print('after')"), Text("ok"))
            again = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            assert again.status == "completed", again.last_error
    finally:
        server.stop()
