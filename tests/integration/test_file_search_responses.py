"""Responses' file_search through the openai SDK: a vector store built from a docx the test writes,
the scripted model searching it and citing the passage, the file_search_call item (its results only
with the include), its streaming events, the file_citation annotation where the marker stood, and
the client mistakes of the tool over plain HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.documents import write_docx
from tests.live_server import REPO, LiveServer
from tests.scripted_model import Messages, ScriptedModel, Text, last_tool_output
from tests.search_replies import PASSAGE, marker_of, search_call

FACT = "The Zephyr-7 turbine at the Karsund plant produces 4.2 megawatts of electricity."
RIVER = "The Velda river floods every spring and its delta shelters rare herons."
ANSWER = "The Zephyr-7 produces 4.2 megawatts"
INCLUDE = ["file_search_call.results"]

pytestmark = pytest.mark.slow


def cite(messages: Messages) -> Text:
    return Text(f"{ANSWER} {marker_of(messages, '4.2 megawatts')}.")


@pytest.fixture(scope="module")
def sdk(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with live_server.sdk() as client:
        yield client


@pytest.fixture(scope="module")
def library(sdk: openai.OpenAI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A vector store with two docx files, each with a topic attribute."""
    folder = tmp_path_factory.mktemp("docs")
    turbines = write_docx(folder / "turbines.docx", ["Plant report.", FACT, "Maintenance is yearly."])
    rivers = write_docx(folder / "rivers.docx", ["Field notes.", RIVER])
    store = sdk.vector_stores.create(name="library")
    ids = {"store": store.id}
    for name, path in (("turbines", turbines), ("rivers", rivers)):
        with path.open("rb") as handle:
            done = sdk.vector_stores.files.upload_and_poll(
                vector_store_id=store.id, file=handle, poll_interval_ms=50
            )
        assert done.status == "completed", done.last_error
        sdk.vector_stores.files.update(file_id=done.id, vector_store_id=store.id, attributes={"topic": name})
        ids[name] = done.id
    return ids


def test_search_and_cite(sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]) -> None:
    scripted_model.script(search_call("Zephyr-7 power output"), cite)
    tool = {"type": "file_search", "vector_store_ids": [library["store"]], "max_num_results": 5}
    response = sdk.responses.create(
        model="scripted", input="How much power does the Zephyr-7 make?", tools=[tool]
    )

    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "file_search_call" and call.id.startswith("fs_")
    assert call.status == "completed" and call.queries == ["Zephyr-7 power output"]
    assert call.results is None  # only with the include
    assert message.type == "message"
    text = message.content[0]
    assert text.text == ANSWER + "."  # the marker (and the space before it) left the text
    assert response.output_text == ANSWER + "."
    (annotation,) = text.annotations
    assert annotation.type == "file_citation"
    assert annotation.file_id == library["turbines"] and annotation.filename == "turbines.docx"
    assert annotation.index == len(ANSWER)
    shown = response.tools[0]
    assert shown.type == "file_search" and shown.vector_store_ids == [library["store"]]
    assert shown.max_num_results == 5 and shown.ranking_options is not None

    # The model was offered the tool and read the passage.
    first = scripted_model.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["file_search"]
    assert FACT in last_tool_output(scripted_model.requests[1]["messages"])

    fetched = sdk.responses.retrieve(response.id, include=INCLUDE)
    results = fetched.output[0].results
    assert results and results[0].file_id == library["turbines"] and results[0].filename == "turbines.docx"
    assert FACT in (results[0].text or "") and 0 < (results[0].score or 0) <= 1
    assert results[0].attributes == {"topic": "turbines"}
    assert sdk.responses.retrieve(response.id).output[0].results is None

    # The next turn reads the earlier passages under the same markers: citing one again resolves.
    scripted_model.script(lambda messages: Text(f"Again: {marker_of_any(messages)}"))
    follow = sdk.responses.create(
        model="scripted", input="Say it again.", previous_response_id=response.id, tools=[tool]
    )
    assert follow.output_text == "Again:"
    (again,) = follow.output[0].content[0].annotations
    assert again.file_id == library["turbines"] and again.index == len("Again:")


def marker_of_any(messages: Messages) -> str:
    for message in messages:
        if message.get("role") == "tool":
            for marker, passage in PASSAGE.findall(str(message["content"])):
                if "4.2 megawatts" in passage:
                    return marker
    raise AssertionError("the earlier search's passages are not in the conversation")


def test_streaming_events(sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]) -> None:
    scripted_model.script(search_call("Zephyr-7"), cite)
    tool = {"type": "file_search", "vector_store_ids": [library["store"]]}
    events = list(
        sdk.responses.create(
            model="scripted", input="Zephyr-7 output?", tools=[tool], include=INCLUDE, stream=True
        )
    )
    types = [e.type for e in events]
    start = types.index("response.file_search_call.in_progress")
    assert types[start - 1 : start + 4] == [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    added, done = events[start - 1], events[start + 3]
    assert added.item.type == "file_search_call" and added.item.status == "in_progress"
    searching = events[start + 1]
    assert searching.item_id == added.item.id and searching.output_index == 0
    assert done.item.status == "completed" and done.item.queries == ["Zephyr-7"]
    assert done.item.results and FACT in (done.item.results[0].text or "")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == ANSWER + "."  # no marker ever streamed
    (annotated,) = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert annotated.annotation["type"] == "file_citation"
    assert annotated.annotation["file_id"] == library["turbines"]
    assert annotated.annotation["index"] == len(ANSWER)
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == ANSWER + "."
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))


def test_filters_and_forced_search(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    scripted_model.script(search_call("Zephyr-7 turbine river"), Text("Noted."))
    tool = {
        "type": "file_search",
        "vector_store_ids": [library["store"]],
        "filters": {"type": "eq", "key": "topic", "value": "rivers"},
    }
    response = sdk.responses.create(
        model="scripted",
        input="What do the notes say?",
        tools=[tool],
        tool_choice={"type": "file_search"},
        include=INCLUDE,
    )
    assert response.status == "completed", response.error
    results = response.output[0].results or []
    assert results and {r.file_id for r in results} == {library["rivers"]}
    assert scripted_model.requests[0]["tool_choice"] == {
        "type": "function",
        "function": {"name": "file_search"},
    }


@pytest.mark.parametrize(
    ("tool", "extra", "status", "param"),
    [
        ({"vector_store_ids": ["vs_nope"]}, {}, 400, "tools[0].vector_store_ids"),
        ({"vector_store_ids": []}, {}, 400, "tools[0].vector_store_ids"),
        ({}, {}, 400, "tools[0].vector_store_ids"),
        ({"max_num_results": 0}, {}, 400, "tools[0].max_num_results"),
        ({"ranking_options": {"ranker": "best"}}, {}, 400, "tools[0].ranking_options.ranker"),
        ({"ranking_options": {"score_threshold": 2}}, {}, 400, "tools[0].ranking_options.score_threshold"),
        ({"filters": {"type": "like", "key": "a", "value": 1}}, {}, 400, "tools[0].filters"),
        (None, {"tool_choice": {"type": "file_search"}}, 400, "tool_choice"),
    ],
)
def test_bad_tools(
    http: httpx.Client,
    library: dict[str, str],
    tool: dict[str, Any] | None,
    extra: dict[str, Any],
    status: int,
    param: str,
) -> None:
    tools = [] if tool is None else [{"type": "file_search", "vector_store_ids": [library["store"]], **tool}]
    if tool == {}:
        tools = [{"type": "file_search"}]
    answer = http.post("/responses", json={"model": "scripted", "input": "hi", "tools": tools, **extra})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param


OPENAI3 = REPO / ".clients" / "openai3" / "bin" / "python"
# Runs under openai 3.x: its stream accumulator checks every event's shape on the way.
STREAM_3X = """
import json, sys
import openai
client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
tool = {"type": "file_search", "vector_store_ids": [sys.argv[3]]}
with client.responses.stream(
    model="scripted", input="Zephyr-7?", tools=[tool], include=["file_search_call.results"]
) as stream:
    types = [event.type for event in stream]
    final = stream.get_final_response()
call, message = final.output
print(json.dumps({
    "version": openai.__version__,
    "types": types,
    "call": [call.type, call.status, call.queries, [r.file_id for r in call.results or []]],
    "text": final.output_text,
    "annotations": [a.model_dump() for a in message.content[0].annotations],
}))
"""


def test_openai_3x_stream_accumulator(
    live_server: LiveServer, scripted_model: ScriptedModel, library: dict[str, str], tmp_path: Path
) -> None:
    if not OPENAI3.exists():
        pytest.fail(f"{OPENAI3} is missing: `make test-setup` builds it")
    scripted_model.script(search_call("Zephyr-7"), cite)
    script = tmp_path / "stream_3x.py"
    script.write_text(STREAM_3X)
    done = subprocess.run(
        [str(OPENAI3), str(script), live_server.base_url, live_server.api_key, library["store"]],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["version"].startswith("3.")
    assert "response.file_search_call.searching" in seen["types"]
    assert seen["call"] == ["file_search_call", "completed", ["Zephyr-7"], [library["turbines"]]]
    assert seen["text"] == ANSWER + "."
    assert seen["annotations"] == [
        {
            "type": "file_citation",
            "file_id": library["turbines"],
            "filename": "turbines.docx",
            "index": len(ANSWER),
        }
    ]


def test_an_expired_store_is_refused(sdk: openai.OpenAI, live_server: LiveServer) -> None:
    store = sdk.vector_stores.create(
        name="short-lived", expires_after={"anchor": "last_active_at", "days": 1}
    )
    # A day passing, as the server's database sees it: its expiry moved into the past.
    live_server.write_database(
        "UPDATE vector_stores SET expires_at = :past WHERE id = :id", past=int(time.time()) - 1, id=store.id
    )
    assert sdk.vector_stores.retrieve(store.id).status == "expired"
    tools: Any = [{"type": "file_search", "vector_store_ids": [store.id]}]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="scripted", input="Search it.", tools=tools)
    assert refused.value.body["param"] == "tools[0].vector_store_ids"  # type: ignore[index]
    assert "has expired" in refused.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as searched:
        sdk.vector_stores.search(store.id, query="anything")
    assert searched.value.body["code"] == "vector_store_expired"  # type: ignore[index]
