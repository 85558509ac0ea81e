"""Assistants file_search through the openai SDK: a vector store built from a docx the test writes,
the scripted model searching it and citing the passage, the file_search run step (its passages only
with include[]), the file_citation annotation over the marker, the thread's automatic store for
message attachments, the vector_stores helper, streaming, the classic Azure path, and the client
mistakes of the tool's settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from azure.ai.agents.models import FileSearchTool, MessageAttachment

from tests.conftest import API_KEY
from tests.documents import write_docx
from tests.live_server import LiveServer
from tests.scripted_model import Messages, ScriptedModel, Text, last_tool_output
from tests.search_replies import marker_of, search_call

FACT = "The Halvard-3 compressor at the Osterby depot delivers 61 litres of air per second."
OTHER = "The Marrow lighthouse was painted red and white in 1931 by the harbour guild."
INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"
AZURE = "/api/projects/p1"
AZURE_VERSION = {"api-version": "2025-05-15-preview"}

pytestmark = pytest.mark.slow


def cite(messages: Messages) -> Text:
    return Text(f"It delivers 61 litres per second {marker_of(messages, '61 litres')}.")


@pytest.fixture(scope="module")
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with live_server.sdk() as client:
        yield client


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    return {
        "depot": write_docx(folder / "depot.docx", ["Depot inventory.", FACT, "Serviced in May."]),
        "lighthouse": write_docx(folder / "lighthouse.docx", ["Harbour history.", OTHER]),
    }


@pytest.fixture(scope="module")
def library(sdk: openai.OpenAI, docs: dict[str, Path]) -> dict[str, str]:
    """A vector store with the two docx files."""
    store = sdk.vector_stores.create(name="depot library")
    ids = {"store": store.id}
    for name, path in docs.items():
        with path.open("rb") as handle:
            done = sdk.vector_stores.files.upload_and_poll(
                vector_store_id=store.id, file=handle, poll_interval_ms=50
            )
        assert done.status == "completed", done.last_error
        ids[name] = done.id
    return ids


def test_run_searches_and_cites(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    assistant = sdk.beta.assistants.create(
        model="scripted",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
        tool_resources={"file_search": {"vector_store_ids": [library["store"]]}},
    )
    assert assistant.tool_resources and assistant.tool_resources.file_search
    assert assistant.tool_resources.file_search.vector_store_ids == [library["store"]]
    thread = sdk.beta.threads.create(
        messages=[{"role": "user", "content": "How much air does Halvard-3 give?"}]
    )
    scripted_model.script(search_call("Halvard-3 air delivery"), cite)

    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error

    # The model was offered the tool and read the passage under its marker.
    assert [t["function"]["name"] for t in scripted_model.requests[0]["tools"]] == ["file_search"]
    assert FACT in last_tool_output(scripted_model.requests[1]["messages"])

    answer = sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    text = answer.content[0].text  # type: ignore[union-attr]
    marker = marker_of(scripted_model.requests[1]["messages"], "61 litres")
    assert text.value == f"It delivers 61 litres per second {marker}."
    (annotation,) = text.annotations
    assert annotation.type == "file_citation"
    assert annotation.file_citation.file_id == library["depot"]  # type: ignore[union-attr]
    assert text.value[annotation.start_index : annotation.end_index] == marker == annotation.text

    steps = sdk.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (call,) = steps[0].step_details.tool_calls  # type: ignore[union-attr]
    assert call.type == "file_search"
    results = call.file_search.results  # type: ignore[union-attr]
    assert results and results[0].file_id == library["depot"] and results[0].file_name == "depot.docx"
    assert results[0].content is None  # passages only with the include
    assert 0 < results[0].score <= 1
    assert call.file_search.ranking_options.ranker == "auto"  # type: ignore[union-attr]

    included = sdk.beta.threads.runs.steps.retrieve(
        step_id=steps[0].id, thread_id=thread.id, run_id=run.id, include=[INCLUDE]
    )
    (shown,) = included.step_details.tool_calls  # type: ignore[union-attr]
    passages = [c.text or "" for r in shown.file_search.results for c in r.content or []]  # type: ignore[union-attr]
    assert any(FACT in passage for passage in passages)
    listed = sdk.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, include=[INCLUDE]).data
    assert any(
        s.type == "tool_calls" and s.step_details.tool_calls[0].file_search.results[0].content for s in listed
    )  # type: ignore[union-attr]


def test_attachments_make_the_thread_store(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, docs: dict[str, Path]
) -> None:
    with docs["depot"].open("rb") as handle:
        uploaded = sdk.files.create(file=handle, purpose="assistants")
    assistant = sdk.beta.assistants.create(model="scripted", tools=[{"type": "file_search"}])
    thread = sdk.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "What does the depot's compressor deliver?",
                "attachments": [{"file_id": uploaded.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources and thread.tool_resources.file_search
    (store_id,) = thread.tool_resources.file_search.vector_store_ids or []
    store = sdk.vector_stores.retrieve(store_id)
    assert store.expires_after is not None
    assert (store.expires_after.anchor, store.expires_after.days) == ("last_active_at", 7)
    assert [f.id for f in sdk.vector_stores.files.list(store_id)] == [uploaded.id]

    scripted_model.script(search_call("compressor delivery"), cite)
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    answer = sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    (annotation,) = answer.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.file_citation.file_id == uploaded.id  # type: ignore[union-attr]

    # A later message's attachment goes to the same store.
    with docs["lighthouse"].open("rb") as handle:
        second = sdk.files.create(file=handle, purpose="assistants")
    sdk.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="And the lighthouse?",
        attachments=[{"file_id": second.id, "tools": [{"type": "file_search"}]}],
    )
    again = sdk.beta.threads.retrieve(thread.id)
    assert again.tool_resources.file_search.vector_store_ids == [store_id]  # type: ignore[union-attr]
    assert {f.id for f in sdk.vector_stores.files.list(store_id)} == {uploaded.id, second.id}


def test_a_runs_additional_message_attachment_is_searched(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    assistant = sdk.beta.assistants.create(model="scripted", tools=[{"type": "file_search"}])
    thread = sdk.beta.threads.create()
    scripted_model.script(search_call("Marrow lighthouse"), Text("Red and white."))
    attachment = {"file_id": library["lighthouse"], "tools": [{"type": "file_search"}]}
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "Colours?", "attachments": [attachment]}],
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    assert OTHER in last_tool_output(scripted_model.requests[1]["messages"])
    shown = sdk.beta.threads.retrieve(thread.id).tool_resources
    assert shown and shown.file_search and len(shown.file_search.vector_store_ids or []) == 1


def test_vector_stores_helper_and_streaming(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    assistant = sdk.beta.assistants.create(
        model="scripted",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [library["depot"]]}]}},
    )
    (made,) = assistant.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert made != library["store"]
    assert [f.id for f in sdk.vector_stores.files.list(made)] == [library["depot"]]

    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Halvard-3?"}])
    scripted_model.script(search_call("Halvard-3"), cite)
    with sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, include=[INCLUDE], tool_choice={"type": "file_search"}
    ) as stream:
        events = list(stream)
    names = [e.event for e in events]
    assert names[-1] == "thread.run.completed"
    created = next(e.data for e in events if e.event == "thread.run.step.created")
    assert created.step_details.tool_calls[0].type == "file_search"  # type: ignore[union-attr]
    completed = next(e.data for e in events if e.event == "thread.run.step.completed")
    (call,) = completed.step_details.tool_calls  # type: ignore[union-attr]
    assert FACT in (call.file_search.results[0].content[0].text or "")  # included in the stream too
    # tool_choice {"type": "file_search"} forced the tool on the first turn.
    forced = scripted_model.requests[0]["tool_choice"]
    assert forced == {"type": "function", "function": {"name": "file_search"}}
    message = next(e.data for e in events if e.event == "thread.message.completed")
    (annotation,) = message.content[0].text.annotations  # type: ignore[union-attr]
    assert annotation.file_citation.file_id == library["depot"]  # type: ignore[union-attr]


def test_classic_azure_agents(
    api: httpx.Client, scripted_model: ScriptedModel, library: dict[str, str], docs: dict[str, Path]
) -> None:
    """The bodies azure-ai-agents' FileSearchTool and MessageAttachment send."""
    tool = FileSearchTool(vector_store_ids=[library["store"]])
    agent = api.post(
        f"{AZURE}/assistants",
        params=AZURE_VERSION,
        json={
            "model": "scripted",
            "tools": [d.as_dict() for d in tool.definitions],
            "tool_resources": tool.resources.as_dict(),
        },
    )
    assert agent.status_code == 200, agent.text
    attachment = MessageAttachment(file_id=library["lighthouse"], tools=tool.definitions).as_dict()
    thread = api.post(
        f"{AZURE}/threads",
        params=AZURE_VERSION,
        json={"messages": [{"role": "user", "content": "Lighthouse?", "attachments": [attachment]}]},
    ).json()
    assert len(thread["tool_resources"]["file_search"]["vector_store_ids"]) == 1
    scripted_model.script(search_call("Marrow lighthouse colours"), Text("Red and white."))
    run = api.post(
        f"{AZURE}/threads/{thread['id']}/runs",
        params=AZURE_VERSION,
        json={"assistant_id": agent.json()["id"]},
    ).json()
    for _ in range(200):
        run = api.get(f"{AZURE}/threads/{thread['id']}/runs/{run['id']}", params=AZURE_VERSION).json()
        if run["status"] not in ("queued", "in_progress"):
            break
    assert run["status"] == "completed", run
    assert OTHER in last_tool_output(scripted_model.requests[1]["messages"])


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/assistants",
            {"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["vs_missing"]}}},
            "tool_resources.file_search.vector_store_ids",
        ),
        (
            "/assistants",
            {"model": "m", "tool_resources": {"file_search": {"vector_store_ids": ["{store}", "vs_other"]}}},
            "tool_resources.file_search.vector_store_ids",
        ),
        (
            "/assistants",
            {"model": "m", "tools": [{"type": "file_search", "file_search": {"max_num_results": 0}}]},
            "tools.0.file_search.max_num_results",
        ),
        (
            "/assistants",
            {
                "model": "m",
                "tools": [
                    {"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 2}}}
                ],
            },
            "tools.0.file_search.ranking_options.score_threshold",
        ),
        (
            "/threads",
            {"tool_resources": {"code_interpreter": {"vector_store_ids": ["vs_missing"]}}},
            "tool_resources.code_interpreter.vector_store_ids",
        ),
        (
            "/threads",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": "x",
                        "attachments": [{"file_id": "{exe}", "tools": [{"type": "file_search"}]}],
                    }
                ]
            },
            "messages[0].attachments[0].file_id",
        ),
    ],
    ids=[
        "unknown store",
        "two stores",
        "max_num_results 0",
        "threshold 2",
        "code store",
        "unsearchable file",
    ],
)
def test_bad_settings_are_400(
    api: httpx.Client, library: dict[str, str], path: str, body: dict[str, Any], param: str
) -> None:
    exe = api.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("tool.exe", b"MZ\x90\x00")})
    filled = json.loads(
        json.dumps(body).replace("{store}", library["store"]).replace("{exe}", exe.json()["id"])
    )
    answer = api.post("/v1" + path, json=filled)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
