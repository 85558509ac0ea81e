"""azure-ai-agents 1.1.0 against agentbox's /api/projects/{project} prefix over HTTPS (spec §3.6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.ai.agents import AgentsClient
from azure.ai.agents.models import (
    CodeInterpreterTool,
    FilePurpose,
    ListSortOrder,
    MessageRole,
    RunStatus,
)
from azure.identity import DefaultAzureCredential

from tests.azure_identity_env import start_azure_server, use_local_identity
from tests.conftest import API_KEY
from tests.integration.test_seed_scenario import CHART, PNG_MAGIC, answer_with_total, expected_total
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel

IDENTITY_HEADER = "agents-identity-header"
PROMPT = "Could you please create bar chart in the TRANSPORTATION sector for the operating profit?"


@pytest.fixture(scope="module")
def azure_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    server = start_azure_server(
        tmp_path_factory.mktemp("azure-agents") / "data", scripted_model_server.base_url, IDENTITY_HEADER
    )
    yield server
    server.stop()


@pytest.fixture
def agents(azure_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentsClient]:
    use_local_identity(monkeypatch, azure_server, IDENTITY_HEADER)
    with AgentsClient(
        endpoint=f"{azure_server.url}/api/projects/p1", credential=DefaultAzureCredential()
    ) as client:
        yield client


def test_code_interpreter_flow(
    agents: AgentsClient, scripted_model: ScriptedModel, quarterly_csv: Path, tmp_path: Path
) -> None:
    uploaded = agents.files.upload_and_poll(file_path=str(quarterly_csv), purpose=FilePurpose.AGENTS)
    assert uploaded.status == "processed"
    code_interpreter = CodeInterpreterTool(file_ids=[uploaded.id])
    agent = agents.create_agent(
        model="gpt-4o-mini",
        name="charts",
        instructions="You analyse data with code.",
        tools=code_interpreter.definitions,
        tool_resources=code_interpreter.resources,
    )
    thread = agents.threads.create()
    agents.messages.create(thread_id=thread.id, role=MessageRole.USER, content=PROMPT)
    scripted_model.script(Code(CHART), answer_with_total)

    run = agents.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=1)

    assert run.status == RunStatus.COMPLETED, run.last_error
    text = agents.messages.get_last_message_text_by_role(thread_id=thread.id, role=MessageRole.AGENT)
    assert text is not None and f"totals {expected_total(quarterly_csv)}" in text.text.value
    answer = next(iter(agents.messages.list(thread_id=thread.id)))
    (image,) = answer.image_contents
    chart = b"".join(agents.files.get_content(image.image_file.file_id))
    assert chart.startswith(PNG_MAGIC) and len(chart) > 5_000
    agents.files.save(file_id=image.image_file.file_id, file_name="chart.png", target_dir=tmp_path)
    assert (tmp_path / "chart.png").read_bytes() == chart

    agents.files.delete(uploaded.id)
    agents.delete_agent(agent.id)


def test_message_listing_pages_to_the_end_once(agents: AgentsClient) -> None:
    thread = agents.threads.create()
    created = [
        agents.messages.create(thread_id=thread.id, role=MessageRole.USER, content=f"message {n}").id
        for n in range(23)
    ]

    # limit=10 makes the SDK follow `last_id` across three pages and stop on the empty fourth.
    seen = [m.id for m in agents.messages.list(thread_id=thread.id, limit=10, order=ListSortOrder.ASCENDING)]

    assert seen == created
    newest_first = [m.id for m in agents.messages.list(thread_id=thread.id, limit=10)]
    assert newest_first == created[::-1]


def test_every_success_is_200_on_the_azure_prefix(azure_server: LiveServer, quarterly_csv: Path) -> None:
    # Azure SDKs treat anything but 200 as failure, creates and deletes included (spec §3.5).
    base = f"{azure_server.url}/api/projects/p1"
    with httpx.Client(
        base_url=base,
        verify=azure_server.tls_context(),
        headers={"Authorization": f"Bearer {API_KEY}"},
        params={"api-version": "v1"},
        timeout=30,
    ) as http:
        with quarterly_csv.open("rb") as handle:
            upload = http.post("/files", files={"file": handle}, data={"purpose": "assistants"})
        assistant = http.post("/assistants", json={"model": "gpt-4o-mini"})
        thread = http.post("/threads", json={})
        message = http.post(
            f"/threads/{thread.json()['id']}/messages", json={"role": "user", "content": "hi"}
        )
        responses = [
            upload,
            assistant,
            thread,
            message,
            http.post(f"/assistants/{assistant.json()['id']}", json={"name": "renamed"}),
            http.delete(f"/threads/{thread.json()['id']}/messages/{message.json()['id']}"),
            http.delete(f"/threads/{thread.json()['id']}"),
            http.delete(f"/assistants/{assistant.json()['id']}"),
            http.delete(f"/files/{upload.json()['id']}"),
        ]
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]


@pytest.mark.parametrize(
    "version", ["2024-07-01-preview", "2024-12-01-preview", "2025-05-15-preview", "v1", None]
)
def test_known_api_versions_are_accepted(azure_server: LiveServer, version: str | None) -> None:
    params = {"api-version": version} if version else {}
    response = httpx.get(
        f"{azure_server.url}/api/projects/p1/assistants",
        params=params,
        headers={"Authorization": f"Bearer {API_KEY}"},
        verify=azure_server.tls_context(),
    )
    assert response.status_code == 200


def test_unknown_api_version_is_400(azure_server: LiveServer) -> None:
    response = httpx.get(
        f"{azure_server.url}/api/projects/p1/assistants",
        params={"api-version": "2023-01-01"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        verify=azure_server.tls_context(),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "api-version" and "api-version" in error["message"]
    assert error["type"] == "invalid_request_error"


def test_credentials_are_checked_before_the_api_version(azure_server: LiveServer) -> None:
    response = httpx.get(
        f"{azure_server.url}/api/projects/p1/assistants",
        params={"api-version": "2023-01-01"},
        verify=azure_server.tls_context(),
    )
    assert response.status_code == 401
