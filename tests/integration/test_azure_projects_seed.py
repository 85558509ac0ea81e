"""The seed's Azure sample, unmodified in shape: azure-ai-projects 1.0.0b4 over HTTPS with a
managed-identity token from agentbox itself (spec §3.2-3.5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import (
    AgentEventHandler,
    CodeInterpreterTool,
    FilePurpose,
    MessageDeltaChunk,
    RunStep,
    ThreadRun,
)
from azure.identity import DefaultAzureCredential

from tests.azure_identity_env import start_azure_server, use_local_identity
from tests.integration.test_seed_scenario import CHART, PNG_MAGIC, answer_with_total, expected_total
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text

IDENTITY_HEADER = "local-identity-header-for-tests"


@pytest.fixture(scope="module")
def azure_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    server = start_azure_server(
        tmp_path_factory.mktemp("azure-projects") / "data", scripted_model_server.base_url, IDENTITY_HEADER
    )
    yield server
    server.stop()


def test_seed_sample_with_azure_ai_projects(
    azure_server: LiveServer,
    scripted_model: ScriptedModel,
    quarterly_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client never sees the API key: every call succeeds on the token our route signed.
    use_local_identity(monkeypatch, azure_server, IDENTITY_HEADER)
    scripted_model.script(Code(CHART), answer_with_total)

    project_client = AIProjectClient.from_connection_string(
        credential=DefaultAzureCredential(), conn_str=f"127.0.0.1:{azure_server.port};sub;rg;proj"
    )
    with project_client:
        file = project_client.agents.upload_file_and_poll(
            file_path=str(quarterly_csv), purpose=FilePurpose.AGENTS
        )
        code_interpreter = CodeInterpreterTool(file_ids=[file.id])
        agent = project_client.agents.create_agent(
            model="gpt-4o-mini",
            name="my-agent",
            instructions="You are helpful agent",
            tools=code_interpreter.definitions,
            tool_resources=code_interpreter.resources,
        )
        thread = project_client.agents.create_thread()
        project_client.agents.create_message(
            thread_id=thread.id,
            role="user",
            content="Could you please create bar chart in the TRANSPORTATION sector for the operating "
            "profit from the uploaded csv file and provide file to me?",
        )
        run = project_client.agents.create_and_process_run(thread_id=thread.id, assistant_id=agent.id)
        assert run.status == "completed", run.last_error

        project_client.agents.delete_file(file.id)
        messages = project_client.agents.list_messages(thread_id=thread.id)
        last_msg = messages.get_last_text_message_by_sender("assistant")
        assert last_msg is not None
        assert f"totals {expected_total(quarterly_csv)}" in last_msg.text.value

        images = messages.image_contents
        assert len(images) == 1
        for image_content in images:
            file_name = f"{image_content.image_file.file_id}_image_file.png"
            project_client.agents.save_file(
                file_id=image_content.image_file.file_id, file_name=file_name, target_dir=tmp_path
            )
            saved = (tmp_path / file_name).read_bytes()
            assert saved.startswith(PNG_MAGIC) and len(saved) > 5_000

        project_client.agents.delete_agent(agent.id)


class Recorder(AgentEventHandler):
    """Keeps what the b4 handler is given; b4 silently drops events that share an HTTP chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.run_statuses: list[str] = []
        self.step_statuses: list[str] = []
        self.text: list[str] = []
        self.done = False

    def on_thread_run(self, run: ThreadRun) -> None:
        self.run_statuses.append(run.status)

    def on_run_step(self, step: RunStep) -> None:
        self.step_statuses.append(f"{step.type.value}:{step.status.value}")

    def on_message_delta(self, delta: MessageDeltaChunk) -> None:
        self.text.append(delta.text)

    def on_done(self) -> None:
        self.done = True


def test_create_stream_delivers_every_event_to_the_handler(
    azure_server: LiveServer, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_local_identity(monkeypatch, azure_server, IDENTITY_HEADER)
    answer = "The chart is ready: every token of this sentence must arrive, one chunk per event."
    scripted_model.script(Code("print(21 * 2)"), Text(answer))
    project_client = AIProjectClient.from_connection_string(
        credential=DefaultAzureCredential(), conn_str=f"127.0.0.1:{azure_server.port};sub;rg;proj"
    )
    with project_client:
        agent = project_client.agents.create_agent(
            model="gpt-4o-mini", name="streamer", tools=CodeInterpreterTool().definitions
        )
        thread = project_client.agents.create_thread()
        project_client.agents.create_message(thread_id=thread.id, role="user", content="stream it")
        recorder = Recorder()
        with project_client.agents.create_stream(
            thread_id=thread.id, assistant_id=agent.id, event_handler=recorder
        ) as stream:
            stream.until_done()
    assert "".join(recorder.text) == answer
    assert recorder.run_statuses == ["queued", "queued", "in_progress", "completed"]
    assert recorder.step_statuses.count("tool_calls:completed") == 1
    assert recorder.step_statuses[-1] == "message_creation:completed"
    assert recorder.done
