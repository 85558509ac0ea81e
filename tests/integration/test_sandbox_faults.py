"""The sandbox failing under a run, through the real server: a kernel the OOM killer ends in the
middle of a run, and the fork server's template killed while several sessions start.

One server of its own: a small session memory cap (so an allocation loop meets the OOM killer
soon) and no warm pool (so every session's kernel comes from the template, none started ahead).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import openai
import pytest

from agentbox.sandbox.kernel import OOM_MESSAGE
from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.metrics_scrape import scrape, value
from tests.sandbox_fixtures import cell_seconds, requires_sandbox
from tests.scripted_model import Code, Messages, ScriptedModel, Text, last_tool_output

pytestmark = [pytest.mark.slow, requires_sandbox]

MEMORY_BOMB = (
    "chunks = []\n"
    "for _ in range(1024):\n"  # at most 1 GiB, four times the session's cap
    "    chunks.append(bytearray(1 << 20))\n"
    "print('survived')\n"
)
TEMPLATE_SCRIPT = b"/opt/agentbox/inside/forkserver.py"


@pytest.fixture(scope="module")
def faults_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("faults") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(30):g}",
        AGENTBOX_SESSION_MEMORY_MB="256",
        AGENTBOX_POOL_SIZE="0",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def faults(faults_server: LiveServer) -> Iterator[openai.OpenAI]:
    with faults_server.sdk() as client:
        yield client


def _logs(client: openai.OpenAI, thread_id: str, run_id: str) -> list[str]:
    """The code interpreter logs of a run's steps, in order."""
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    logs = []
    for step in steps:
        if step.step_details.type != "tool_calls":
            continue
        for call in step.step_details.tool_calls:
            assert call.type == "code_interpreter"
            logs += [o.logs for o in call.code_interpreter.outputs if o.type == "logs"]
    return logs


def test_a_kernel_oom_killed_mid_run_is_reported_and_the_thread_runs_again(
    faults: openai.OpenAI, faults_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    ooms_before = value(scrape(faults_server), "agentbox_sandbox_oom_kills_total")
    assistant = faults.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = faults.beta.threads.create(messages=[{"role": "user", "content": "use a lot of memory"}])
    scripted_model.script(
        Code("kept = 1\nprint('ready')"),
        Code(MEMORY_BOMB),
        lambda m: Text(f"The kernel said: {last_tool_output(m)}"),
    )
    run = faults.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    ready, bomb = _logs(faults, thread.id, run.id)
    assert ready == "ready\n"
    assert "survived" not in bomb and bomb.endswith(OOM_MESSAGE), bomb
    (answer, _question) = faults.beta.threads.messages.list(thread.id).data
    assert answer.content[0].type == "text" and OOM_MESSAGE in answer.content[0].text.value
    assert value(scrape(faults_server), "agentbox_sandbox_oom_kills_total") == ooms_before + 1

    faults.beta.threads.messages.create(thread.id, role="user", content="and now?")
    scripted_model.script(Code("print('kept' in globals(), 6 * 7)"), Text("42, on a fresh kernel."))
    again = faults.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert again.status == "completed", again.last_error
    (logs,) = _logs(faults, thread.id, again.id)
    assert logs.splitlines()[-1] == "False 42"  # a fresh kernel: the variables went with the old one


def _template_pid(server: LiveServer) -> int | None:
    """The live fork-server template: the server's child running inside/forkserver.py."""
    for task in os.listdir(f"/proc/{server.pid}/task"):
        with open(f"/proc/{server.pid}/task/{task}/children") as f:
            for child in f.read().split():
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if TEMPLATE_SCRIPT in cmdline:
                    return int(child)
    return None


def _kill_template(server: LiveServer) -> bool:
    pid = _template_pid(server)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def _run_this(messages: Messages) -> Code | Text:
    """Each thread's first turn runs code naming its thread's number; the second reports it."""
    if messages[-1].get("role") == "tool":
        return Text(f"It printed {last_tool_output(messages).strip()}.")
    number = int(str(messages[-1]["content"]))
    return Code(f"import os\nprint('session', {number}, os.getpid() > 1)")


def test_the_fork_server_template_dying_under_load_costs_no_session(
    faults: openai.OpenAI, faults_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    sessions = 6
    scripted_model.script(*[_run_this] * (2 * sessions))
    assistant = faults.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    with ThreadPoolExecutor(sessions) as pool:
        futures = [
            pool.submit(
                faults.beta.threads.create_and_run_poll,
                assistant_id=assistant.id,
                thread={"messages": [{"role": "user", "content": str(number)}]},
            )
            for number in range(sessions)
        ]
        assert _kill_template(faults_server), "the server has no template to kill"
        wait(futures, return_when=FIRST_COMPLETED)
        # Its replacement, while the other sessions still start (none if no start has needed one yet).
        _kill_template(faults_server)
        runs = [future.result() for future in futures]
    for number, run in enumerate(runs):
        assert run.status == "completed", (number, run.last_error)
        assert _logs(faults, run.thread_id, run.id) == [f"session {number} True\n"]
