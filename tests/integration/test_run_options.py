"""Run options reach the model as the Assistants API defines them, and the objects carry them."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel, Text


def run_once(
    client: openai.OpenAI, thread_id: str, assistant_id: str, **options: object
) -> openai.types.beta.threads.Run:
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id,
        assistant_id=assistant_id,
        poll_interval_ms=50,
        **options,  # type: ignore[arg-type]
    )
    assert run.status == "completed", run.last_error
    return run


def test_instructions_additional_messages_and_sampling_reach_the_model(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(
        model="base-model",
        instructions="Assistant's own.",
        tools=[{"type": "code_interpreter"}],
        temperature=0.3,
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    scripted_model.script(Text("ok"))
    run = run_once(
        client,
        thread.id,
        assistant.id,
        model="other-model",
        instructions="Run's override.",
        additional_instructions="Be brief.",
        additional_messages=[{"role": "user", "content": "second"}],
        top_p=0.5,
        metadata={"purpose": "test"},
    )
    (request,) = scripted_model.requests
    assert request["model"] == "other-model"
    system = request["messages"][0]["content"]
    assert system.startswith("Run's override.\n\nBe brief.") and "Assistant's own." not in system
    assert [m["content"] for m in request["messages"][1:]] == ["first", "second"]
    assert request["temperature"] == 0.3 and request["top_p"] == 0.5
    assert run.model == "other-model" and run.instructions == "Run's override."
    assert run.metadata == {"purpose": "test"} and run.temperature == 0.3 and run.top_p == 0.5


def test_tools_override_and_tool_choice(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    scripted_model.script(Text("no tools"))
    run = run_once(client, thread.id, assistant.id, tools=[])
    assert "tools" not in scripted_model.requests[0] and run.tools == []

    scripted_model.reset()
    scripted_model.script(Code("print(1)"), Text("done"))
    run_once(
        client, thread.id, assistant.id, tool_choice={"type": "code_interpreter"}, parallel_tool_calls=False
    )
    first, second = scripted_model.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert first["parallel_tool_calls"] is False
    assert "tool_choice" not in second  # forcing only the first turn lets the run end


def test_truncation_strategy_keeps_only_the_last_messages(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(5)])
    scripted_model.script(Text("ok"))
    run = run_once(
        client, thread.id, assistant.id, truncation_strategy={"type": "last_messages", "last_messages": 2}
    )
    assert [m["content"] for m in scripted_model.requests[0]["messages"][1:]] == ["m3", "m4"]
    assert run.truncation_strategy.type == "last_messages"


def test_message_list_filters_by_run_under_both_spellings(
    live_server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "q"}])
    scripted_model.script(Text("a1"), Text("a2"))
    first = run_once(client, thread.id, assistant.id)
    run_once(client, thread.id, assistant.id)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for key in ("run_id", "runId"):
        listed = httpx.get(
            f"{live_server.base_url}/threads/{thread.id}/messages", params={key: first.id}, headers=headers
        ).json()
        assert [m["content"][0]["text"]["value"] for m in listed["data"]] == ["a1"]
    steps = httpx.get(
        f"{live_server.base_url}/threads/{thread.id}/runs/{first.id}/steps",
        params={"include[]": "step_details.tool_calls[*].file_search.results[*].content"},
        headers=headers,
    )
    assert steps.status_code == 200 and steps.json()["data"][0]["type"] == "message_creation"


def test_before_cursor_and_empty_pages(live_server: LiveServer, client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    ids = [
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=str(i)).id
        for i in range(4)
    ]
    page = client.beta.threads.messages.list(thread_id=thread.id, order="asc", before=ids[3], limit=2)
    assert [m.id for m in page.data] == [ids[1], ids[2]]
    empty = httpx.get(
        f"{live_server.base_url}/threads/{thread.id}/messages",
        params={"order": "asc", "after": ids[3]},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_metadata_is_limited_to_16_pairs(client: openai.OpenAI) -> None:
    client.beta.threads.create(metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(openai.BadRequestError, match="16"):
        client.beta.threads.create(metadata={f"k{i}": "v" for i in range(17)})
