"""SIGKILL of the real server in the middle of a cell, a stream, an upload, and a run waiting for tool
outputs. After the restart every run is final with a reason, stored bytes are intact, nothing of the
old server's sandboxes is left (process, cgroup, mount, uid) and the same thread runs again.

One server for the module: each test kills it and starts it again on the same data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from agentbox.sandbox import cgroups, datadir
from agentbox.sandbox.manager import cgroup_group
from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.model_replies import function_call
from tests.sandbox_fixtures import host_pids, requires_sandbox
from tests.scripted_model import Code, Hold, ScriptedModel, Text, last_tool_output

pytestmark = requires_sandbox

NOTES = b"kept bytes \x00\xff of an earlier upload\n" * 1000
RESTARTED = "The server restarted while this run was active."
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("crashes") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_POOL_SIZE="1",
    ).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer, scripted_model: ScriptedModel) -> Iterator[openai.OpenAI]:
    with server.sdk() as sdk:
        yield sdk


@pytest.fixture
def notes(client: openai.OpenAI) -> Any:
    """A file uploaded before the crash: it must come back byte for byte."""
    return client.files.create(file=("notes.txt", NOTES), purpose="assistants")


# -- what the old server's sandboxes held -----------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    processes: frozenset[tuple[int, str]]
    """(pid, start time): the server's descendants and every process in its session cgroups."""
    uids: frozenset[int]
    """The host uids its sessions ran as."""
    cgroups: frozenset[str]
    mounts: frozenset[Path]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # the command name may hold spaces and parentheses


def _uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return int(next(line for line in status if line.startswith("Uid:")).split()[1])
    except (OSError, StopIteration):
        return None


def _cgroup_lines(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in host_pids():
        fields = _stat(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def descends_from(pid: int, root: int) -> bool:
    while pid > 1:
        fields = _stat(pid)
        if fields is None:
            return False
        pid = int(fields[1])
        if pid == root:
            return True
    return False


def footprint(server: LiveServer) -> Footprint:
    sessions = server.data_dir.resolve() / "sessions"
    group = cgroup_group(sessions)
    hierarchy = cgroups.detect()
    names = hierarchy.session_names(group)
    in_sessions = {p for n in names for p in hierarchy.session(group, n).pids()}
    pids = descendants(server.pid) | in_sessions
    processes = {(pid, fields[19]) for pid in pids if (fields := _stat(pid)) is not None}
    uids = {uid for pid in in_sessions if (uid := _uid(pid)) is not None and uid != 0}
    return Footprint(
        frozenset(processes), frozenset(uids), frozenset(names), frozenset(datadir.mounts_under(sessions))
    )


def left_behind(old: Footprint, server: LiveServer) -> list[str]:
    """What of the old server's sandboxes the restarted server still shows."""
    sessions = server.data_dir.resolve() / "sessions"
    group = cgroup_group(sessions)
    suspects = {pid: why for pid in host_pids() if (why := _stray(pid, old, server, group))}
    if suspects:
        # A sandbox the new server is starting right now may be caught between fork and its
        # cgroup, or with a parent mid-exit: what is really left behind is still there a second on.
        time.sleep(1)
        suspects = {pid: why for pid, why in suspects.items() if _stray(pid, old, server, group) == why}
    left = list(suspects.values())
    still = set(cgroups.detect().session_names(group)) & old.cgroups
    left += [f"cgroup {name}" for name in sorted(still)]
    left += [f"mount {point}" for point in datadir.mounts_under(sessions) if point in old.mounts]
    left += [f"session dir {entry.name}" for entry in sessions.iterdir() if entry.name in old.cgroups]
    return left


def _stray(pid: int, old: Footprint, server: LiveServer, group: str) -> str | None:
    """Why this process belongs to the old server's sandboxes, or None."""
    fields = _stat(pid)
    if fields is not None and (pid, fields[19]) in old.processes:
        return f"process {pid}"
    # Ancestry is read per process, now: the new server's pool may start a sandbox on a reused uid
    # while the caller looks, and a list of its descendants taken before would miss it.
    if _uid(pid) in old.uids and not descends_from(pid, server.pid):
        # An old session's uid may run only under the new server: not in an old session's cgroup,
        # and not outside every agentbox cgroup (escaped). Another server's group (a test running
        # beside this one) is not ours to judge.
        lines = _cgroup_lines(pid)
        if any(f"/{group}/{name}" in lines for name in old.cgroups) or "/agentbox-" not in lines:
            return f"process {pid} with the old session uid {_uid(pid)}"
    return None


def crash_and_restart(server: LiveServer, client: openai.OpenAI) -> None:
    old = footprint(server)
    assert old.cgroups, "the crash is meant to hit a live sandbox session"
    server.kill()
    server.start()
    client.base_url = httpx.URL(server.base_url)  # the new server listens on a new port
    assert left_behind(old, server) == []


# -- helpers ----------------------------------------------------------------------------------------


def wait_for(predicate: Any, what: str, timeout_s: float = 60) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s * 20)):
        if predicate():
            return
        event.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stored_files(server: LiveServer) -> dict[str, bytes]:
    """Every file the data dir keeps outside the sandboxes and the database."""
    root = server.data_dir
    kept = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in ("sessions", "tls") and "sqlite3" not in path.name:
            kept[str(relative)] = path.read_bytes()
    return kept


def assert_runs_final(client: openai.OpenAI, thread_id: str) -> None:
    for run in client.beta.threads.runs.list(thread_id=thread_id).data:
        assert run.status in ("completed", "failed", "cancelled", "expired", "incomplete"), run
        if run.status == "failed":
            assert run.last_error is not None and run.last_error.message


def run_again(
    client: openai.OpenAI, scripted_model: ScriptedModel, thread_id: str, assistant_id: str
) -> None:
    """The thread takes a new run, its code runs in a fresh sandbox, and the earlier upload reads intact."""
    scripted_model.script(
        Code("import hashlib\nprint(hashlib.sha256(open('/mnt/data/notes.txt','rb').read()).hexdigest())"),
        lambda m: Text(f"digest {last_tool_output(m).strip()}"),
    )
    client.beta.threads.messages.create(thread_id=thread_id, role="user", content="again")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    answer = client.beta.threads.messages.list(thread_id=thread_id, limit=1).data[0]
    assert answer.content[0].text.value == f"digest {hashlib.sha256(NOTES).hexdigest()}"  # type: ignore[union-attr]


def code_assistant(client: openai.OpenAI, notes: Any, **extra: Any) -> Any:
    return client.beta.assistants.create(
        model="m",
        tools=[{"type": "code_interpreter"}, *extra.pop("tools", [])],
        tool_resources={"code_interpreter": {"file_ids": [notes.id]}},
    )


# -- the crashes ------------------------------------------------------------------------------------


def test_a_kill_in_the_middle_of_a_cell(
    server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel, notes: Any
) -> None:
    assistant = code_assistant(client, notes)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    scripted_model.script(Code("open('/mnt/data/cell-started', 'w').close()\nimport time\ntime.sleep(120)"))
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    sessions = server.data_dir / "sessions"
    wait_for(lambda: any(sessions.glob("*/cell-started")), "the cell to start")
    files_before = stored_files(server)

    crash_and_restart(server, client)

    ended = client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)
    assert ended.status == "failed" and ended.last_error is not None
    assert (ended.last_error.code, ended.last_error.message) == ("server_error", RESTARTED)
    (step,) = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
    assert step.status == "failed" and step.last_error is not None and step.last_error.message == RESTARTED
    assert client.files.content(notes.id).read() == NOTES
    assert stored_files(server) == files_before
    assert_runs_final(client, thread.id)
    run_again(client, scripted_model, thread.id, assistant.id)


def test_a_kill_in_the_middle_of_a_stream(
    server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel, notes: Any
) -> None:
    release = threading.Event()
    try:
        assistant = code_assistant(client, notes)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "tell me slowly"}])
        # A cell first, so the crash also finds a live session; then an answer that stalls mid-way.
        scripted_model.script(Code("print('warm')"), Hold("The answer is", release))
        # A background response stalls beside it: the Responses side must end too.
        scripted_model.script(Hold("Partial", release))
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            names = []
            for event in stream:
                names.append(event.event)
                if event.event == "thread.message.delta":
                    break
            waiting = client.responses.create(model="m", input="slowly", background=True)
            wait_for(lambda: len(scripted_model.requests) == 3, "the response's model call")
            crash_and_restart(server, client)
    finally:
        release.set()
    assert "thread.run.step.completed" in names  # the cell ran before the answer began

    run_id = client.beta.threads.runs.list(thread_id=thread.id).data[0].id
    ended = client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run_id)
    assert ended.status == "failed" and ended.last_error is not None
    assert ended.last_error.message == RESTARTED
    user, answer = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert user.content[0].text.value == "tell me slowly"  # type: ignore[union-attr]
    # The answer's text is stored whole when it ends: the crash left none of it, and says so.
    assert (answer.status, answer.content) == ("incomplete", [])
    assert answer.incomplete_details is not None and answer.incomplete_details.reason == "run_failed"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run_id, order="asc").data
    assert [s.status for s in steps] == ["completed", "failed"]
    assert_runs_final(client, thread.id)

    response = client.responses.retrieve(waiting.id)
    assert response.status == "failed" and response.error is not None
    assert response.error.message == "The server restarted while this response was in progress."
    scripted_model.script(Text("again"))
    follow = client.responses.create(model="m", input="and now?", previous_response_id=waiting.id)
    assert follow.status == "completed" and follow.output_text == "again"

    run_again(client, scripted_model, thread.id, assistant.id)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_kill_in_the_middle_of_an_upload(
    server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel, notes: Any
) -> None:
    assistant = code_assistant(client, notes)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    scripted_model.script(Code("print('warm')"), Text("ready"))
    warm = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert warm.status == "completed", warm.last_error
    files_before = stored_files(server)
    listed_before = [f.id for f in client.files.list().data]

    boundary = "crash-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as upload:
        upload.sendall(
            (
                "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {API_KEY}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + _chunk(head)
        )
        # More than the socket buffers hold: sendall returns once the server has taken most of it.
        for _ in range(16):
            upload.sendall(_chunk(os.urandom(1 << 20)))
        crash_and_restart(server, client)  # the body never ends

    assert [f.id for f in client.files.list().data] == listed_before  # no record of the cut upload
    assert stored_files(server) == files_before  # no blob, no partial file; the old ones byte-identical
    assert client.files.content(notes.id).read() == NOTES
    assert_runs_final(client, thread.id)
    run_again(client, scripted_model, thread.id, assistant.id)


def test_a_kill_while_a_run_waits_for_tool_outputs(
    server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel, notes: Any
) -> None:
    assistant = code_assistant(client, notes, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    scripted_model.script(Code("print('warm')"), function_call("get_weather", json.dumps({})))
    waiting = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert waiting.status == "requires_action" and waiting.required_action is not None
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls

    crash_and_restart(server, client)

    ended = client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=waiting.id)
    assert ended.status == "failed" and ended.required_action is None and ended.last_error is not None
    assert (ended.last_error.code, ended.last_error.message) == (
        "server_error",
        "The server restarted while this run was waiting for tool outputs.",
    )
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=waiting.id, order="asc").data
    assert [s.status for s in steps] == ["completed", "failed"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id, run_id=waiting.id, tool_outputs=[{"tool_call_id": call.id, "output": "sun"}]
        )
    assert refused.value.status_code == 400
    assert f"Run {waiting.id} is not waiting for tool outputs (status 'failed')." in str(refused.value)
    assert_runs_final(client, thread.id)
    run_again(client, scripted_model, thread.id, assistant.id)
