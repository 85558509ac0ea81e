"""file_search gets a 400 that says it is not supported, wherever a client can ask for it.

Until agentbox has vector stores, accepting it would let a run answer as if it had searched files.
The Azure bodies are built with azure-ai-agents' own models, as its FileSearchTool sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from azure.ai.agents.models import AgentsNamedToolChoice, FileSearchTool, MessageAttachment

from tests.conftest import API_KEY
from tests.live_server import LiveServer

NOT_SUPPORTED = "file_search is not supported by this server yet"
SEARCH = {"type": "file_search"}
CODE = {"type": "code_interpreter"}
RESOURCES = {"file_search": {"vector_store_ids": ["vs_1"]}}
AZURE = "/api/projects/p1"
AZURE_VERSION = {"api-version": "2025-05-15-preview"}

azure_search = FileSearchTool(vector_store_ids=["vs_1"])
AZURE_TOOLS = [d.as_dict() for d in azure_search.definitions]
AZURE_RESOURCES = azure_search.resources.as_dict()
AZURE_ATTACHMENT = MessageAttachment(file_id="{file}", tools=azure_search.definitions).as_dict()


def message(*tools: dict[str, Any], file_id: str = "{file}") -> dict[str, Any]:
    return {"role": "user", "content": "hi", "attachments": [{"file_id": file_id, "tools": list(tools)}]}


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def ids(api: httpx.Client) -> dict[str, str]:
    """An assistant, a thread and a file for the requests that name one."""
    assistant = api.post("/v1/assistants", json={"model": "gpt-4o-mini", "tools": [CODE]}).json()
    thread = api.post("/v1/threads", json={}).json()
    upload = api.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a.csv", b"x,y\n1,2\n")})
    return {"asst": assistant["id"], "thread": thread["id"], "file": upload.json()["id"]}


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def assert_refused(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert NOT_SUPPORTED in error["message"]
    assert error["param"] == param
    assert error["code"] == "unsupported_tool"


ASSISTANT = {"model": "gpt-4o-mini"}
RUN = {"assistant_id": "{asst}"}

# (where, path, body, param): every field of the Assistants generation that can carry file_search.
ASSISTANTS_CASES = [
    ("assistant tools", "/assistants", {**ASSISTANT, "tools": [CODE, SEARCH]}, "tools[1].type"),
    (
        "assistant resources",
        "/assistants",
        {**ASSISTANT, "tool_resources": RESOURCES},
        "tool_resources.file_search",
    ),
    ("assistant update tools", "/assistants/{asst}", {"tools": [SEARCH]}, "tools[0].type"),
    (
        "assistant update resources",
        "/assistants/{asst}",
        {"tool_resources": RESOURCES},
        "tool_resources.file_search",
    ),
    ("thread resources", "/threads", {"tool_resources": RESOURCES}, "tool_resources.file_search"),
    (
        "thread update resources",
        "/threads/{thread}",
        {"tool_resources": RESOURCES},
        "tool_resources.file_search",
    ),
    (
        "thread message attachment",
        "/threads",
        {"messages": [message(SEARCH)]},
        "messages[0].attachments[0].tools[0].type",
    ),
    (
        "message attachment",
        "/threads/{thread}/messages",
        message(CODE, SEARCH),
        "message.attachments[0].tools[1].type",
    ),
    ("run tools", "/threads/{thread}/runs", {**RUN, "tools": [SEARCH]}, "tools[0].type"),
    ("run tool_choice", "/threads/{thread}/runs", {**RUN, "tool_choice": SEARCH}, "tool_choice"),
    (
        "run additional message",
        "/threads/{thread}/runs",
        {**RUN, "additional_messages": [message(SEARCH)]},
        "additional_messages[0].attachments[0].tools[0].type",
    ),
    ("thread-and-run tools", "/threads/runs", {**RUN, "tools": [SEARCH]}, "tools[0].type"),
    ("thread-and-run tool_choice", "/threads/runs", {**RUN, "tool_choice": SEARCH}, "tool_choice"),
    (
        "thread-and-run resources",
        "/threads/runs",
        {**RUN, "tool_resources": RESOURCES},
        "tool_resources.file_search",
    ),
    (
        "thread-and-run thread resources",
        "/threads/runs",
        {**RUN, "thread": {"tool_resources": RESOURCES}},
        "thread.tool_resources.file_search",
    ),
    (
        "thread-and-run thread message",
        "/threads/runs",
        {**RUN, "thread": {"messages": [message(SEARCH)]}},
        "thread.messages[0].attachments[0].tools[0].type",
    ),
]


@pytest.mark.parametrize(
    ("where", "path", "body", "param"), ASSISTANTS_CASES, ids=[c[0] for c in ASSISTANTS_CASES]
)
def test_the_assistants_api_refuses_file_search(
    api: httpx.Client, ids: dict[str, str], where: str, path: str, body: dict[str, Any], param: str
) -> None:
    assert_refused(api.post("/v1" + fill(path, ids), json=fill(body, ids)), param)


def test_a_refused_request_changes_nothing(api: httpx.Client, ids: dict[str, str]) -> None:
    before = api.get(f"/v1/assistants/{ids['asst']}").json()
    messages = api.get(f"/v1/threads/{ids['thread']}/messages").json()["data"]
    api.post(f"/v1/assistants/{ids['asst']}", json={"name": "changed", "tools": [SEARCH]})
    api.post(f"/v1/threads/{ids['thread']}/messages", json=fill(message(SEARCH), ids))
    api.post(f"/v1/threads/{ids['thread']}/runs", json={**fill(RUN, ids), "tool_choice": SEARCH})
    assert api.get(f"/v1/assistants/{ids['asst']}").json() == before
    assert api.get(f"/v1/threads/{ids['thread']}/messages").json()["data"] == messages
    assert api.get(f"/v1/threads/{ids['thread']}/runs").json()["data"] == []


def test_the_openai_sdk_gets_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "file_search"}])
    assert NOT_SUPPORTED in str(caught.value)
    assert caught.value.param == "tools[0].type"  # type: ignore[attr-defined]


AZURE_CASES = [
    ("agent tools", "/assistants", {**ASSISTANT, "tools": AZURE_TOOLS}, "tools[0].type"),
    (
        "agent resources",
        "/assistants",
        {**ASSISTANT, "tool_resources": AZURE_RESOURCES},
        "tool_resources.file_search",
    ),
    (
        "message attachment",
        "/threads/{thread}/messages",
        {"role": "user", "content": "hi", "attachments": [AZURE_ATTACHMENT]},
        "message.attachments[0].tools[0].type",
    ),
    (
        "run tool_choice",
        "/threads/{thread}/runs",
        {**RUN, "tool_choice": AgentsNamedToolChoice(type="file_search").as_dict()},
        "tool_choice",
    ),
    (
        "thread-and-run resources",
        "/threads/runs",
        {**RUN, "tool_resources": AZURE_RESOURCES},
        "tool_resources.file_search",
    ),
]


@pytest.mark.parametrize(("where", "path", "body", "param"), AZURE_CASES, ids=[c[0] for c in AZURE_CASES])
def test_the_classic_azure_agents_api_refuses_file_search(
    api: httpx.Client, ids: dict[str, str], where: str, path: str, body: dict[str, Any], param: str
) -> None:
    answer = api.post(AZURE + fill(path, ids), params=AZURE_VERSION, json=fill(body, ids))
    assert_refused(answer, param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [SEARCH | {"vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
        ({"tools": [CODE | {"container": {"type": "auto"}}], "tool_choice": SEARCH}, "tool_choice"),
    ],
    ids=["tools", "tool_choice"],
)
def test_responses_refuse_file_search(api: httpx.Client, body: dict[str, Any], param: str) -> None:
    assert_refused(api.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "hi", **body}), param)


@pytest.mark.parametrize(
    ("definition", "param"),
    [
        ({"tools": [SEARCH | {"vector_store_ids": ["vs_1"]}]}, "definition.tools[0].type"),
        ({"tool_choice": SEARCH}, "definition.tool_choice"),
    ],
    ids=["tools", "tool_choice"],
)
def test_foundry_agent_definitions_refuse_file_search(
    api: httpx.Client, definition: dict[str, Any], param: str
) -> None:
    body = {"definition": {"kind": "prompt", "model": "gpt-4o-mini", **definition}}
    assert_refused(
        api.post(f"{AZURE}/agents/searcher/versions", params={"api-version": "v1"}, json=body), param
    )
    assert api.get(f"{AZURE}/agents/searcher", params={"api-version": "v1"}).status_code == 404
