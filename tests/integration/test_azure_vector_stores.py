"""Vector stores through azure-ai-projects 1.0.0b4 (the seed's SDK) over HTTPS on the classic Azure
prefix: the seed's C# flow (a store built from the quarterly CSV handed to the code interpreter,
CodeInterpreterToolResource.VectorStoreIds) and file_search with FileSearchTool, its run step's
passages through include[] and the file_citation annotation the SDK parses.

The Python b4 CodeInterpreterToolResource has no `vector_store_ids` field (only file_ids and
data_sources, Azure ML asset references); like every azure-core model it takes raw JSON, which is
how this test sends the C# sample's VectorStoreIds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.ai.projects import AIProjectClient
from azure.ai.projects.models import (
    CodeInterpreterTool,
    CodeInterpreterToolResource,
    FilePurpose,
    FileSearchTool,
    RunAdditionalFieldList,
    ToolResources,
)
from azure.identity import DefaultAzureCredential

from tests.azure_identity_env import start_azure_server, use_local_identity
from tests.documents import write_docx
from tests.integration.test_code_interpreter_stores import SUM, answer
from tests.integration.test_file_search_assistants import FACT, OTHER, cite
from tests.integration.test_seed_scenario import expected_total
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel
from tests.search_replies import marker_of, search_call

pytestmark = pytest.mark.slow

IDENTITY_HEADER = "vector-stores-identity-header"


@pytest.fixture(scope="module")
def azure_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    server = start_azure_server(
        tmp_path_factory.mktemp("azure-stores") / "data", scripted_model_server.base_url, IDENTITY_HEADER
    )
    yield server
    server.stop()


@pytest.fixture
def project(azure_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AIProjectClient]:
    use_local_identity(monkeypatch, azure_server, IDENTITY_HEADER)
    client = AIProjectClient.from_connection_string(
        credential=DefaultAzureCredential(), conn_str=f"127.0.0.1:{azure_server.port};sub;rg;proj"
    )
    with client:
        yield client


def test_store_as_code_interpreter_resource(
    project: AIProjectClient, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    agents = project.agents
    file = agents.upload_file_and_poll(file_path=str(quarterly_csv), purpose=FilePurpose.AGENTS)
    store = agents.create_vector_store_and_poll(file_ids=[file.id], name="my_vectorstore", sleep_interval=0.1)
    assert store.status == "completed"
    # A CSV is no file_search document: its text is not indexed, yet the file belongs to the store.
    assert (store.file_counts.total, store.file_counts.in_progress) == (1, 0)

    resources = ToolResources(code_interpreter=CodeInterpreterToolResource({"vector_store_ids": [store.id]}))
    agent = agents.create_agent(
        model="gpt-4o-mini",
        name="my-agent",
        instructions="You are helpful agent",
        tools=CodeInterpreterTool().definitions,
        tool_resources=resources,
    )
    assert agent.tool_resources.code_interpreter["vector_store_ids"] == [store.id]
    thread = agents.create_thread()
    agents.create_message(
        thread_id=thread.id, role="user", content="Sum the TRANSPORTATION sector's operating profit."
    )
    scripted_model.script(Code(SUM), answer)

    run = agents.create_and_process_run(thread_id=thread.id, assistant_id=agent.id, sleep_interval=0.1)

    assert run.status == "completed", run.last_error
    total = expected_total(quarterly_csv)
    reply = agents.list_messages(thread_id=thread.id).get_last_text_message_by_sender("assistant")
    assert reply is not None and reply.text.value == f"The total is {total}."
    steps = agents.list_run_steps(thread_id=thread.id, run_id=run.id, order="asc").data
    (call,) = steps[0].step_details.tool_calls
    assert (
        call.type == "code_interpreter"
        and "synthetic_500_quarterly_results.csv" in call.code_interpreter.input
    )
    logs = [o.logs for o in call.code_interpreter.outputs if o.type == "logs"]
    assert logs == [f"TOTAL={total}\n"]

    agents.delete_agent(agent.id)
    assert agents.delete_vector_store(store.id).deleted
    agents.delete_file(file.id)


def test_file_search_cites_the_passage(
    project: AIProjectClient, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    agents = project.agents
    depot = agents.upload_file_and_poll(
        file_path=str(write_docx(tmp_path / "depot.docx", ["Depot inventory.", FACT, "Serviced in May."])),
        purpose=FilePurpose.AGENTS,
    )
    harbour = agents.upload_file_and_poll(
        file_path=str(write_docx(tmp_path / "harbour.docx", ["Harbour history.", OTHER])),
        purpose=FilePurpose.AGENTS,
    )
    store = agents.create_vector_store_and_poll(file_ids=[], name="depot library", sleep_interval=0.1)
    batch = agents.create_vector_store_file_batch_and_poll(
        vector_store_id=store.id, file_ids=[depot.id, harbour.id], sleep_interval=0.1
    )
    assert batch.status == "completed" and batch.file_counts.completed == 2

    file_search = FileSearchTool(vector_store_ids=[store.id])
    agent = agents.create_agent(
        model="gpt-4o-mini",
        name="librarian",
        instructions="Answer from the files and cite them.",
        tools=file_search.definitions,
        tool_resources=file_search.resources,
    )
    assert agent.tool_resources.file_search.vector_store_ids == [store.id]
    thread = agents.create_thread()
    agents.create_message(thread_id=thread.id, role="user", content="How much air does Halvard-3 give?")
    scripted_model.script(search_call("Halvard-3 air delivery"), cite)

    run = agents.create_and_process_run(thread_id=thread.id, assistant_id=agent.id, sleep_interval=0.1)

    assert run.status == "completed", run.last_error
    marker = marker_of(scripted_model.requests[1]["messages"], "61 litres")
    messages = agents.list_messages(thread_id=thread.id)
    reply = messages.get_last_text_message_by_sender("assistant")
    assert reply is not None and reply.text.value == f"It delivers 61 litres per second {marker}."
    (citation,) = messages.file_citation_annotations
    assert citation.file_citation.file_id == depot.id
    assert citation.text == marker == reply.text.value[citation.start_index : citation.end_index]

    steps = agents.list_run_steps(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (call,) = steps[0].step_details.tool_calls
    assert call.type == "file_search"
    assert call.file_search.results[0].file_name == "depot.docx"
    assert call.file_search.results[0].content is None  # passages only when asked for

    included = agents.get_run_step(
        thread_id=thread.id,
        run_id=run.id,
        step_id=steps[0].id,
        include=[RunAdditionalFieldList.FILE_SEARCH_CONTENTS],
    )
    (shown,) = included.step_details.tool_calls
    best = shown.file_search.results[0]
    assert best.file_id == depot.id and 0 < best.score <= 1
    assert any(FACT in (part.text or "") for part in best.content)

    agents.delete_agent(agent.id)
    assert agents.delete_vector_store(store.id).deleted
