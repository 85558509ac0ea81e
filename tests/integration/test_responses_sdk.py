"""Responses, Conversations and Containers through unmodified openai 1.109.1 and 3.57.0, against the
live server; plus the client mistakes of that surface, over plain HTTP.

Each SDK runs tests/clients/responses_flow.py in its own environment, one section per test, and
the assertions are on what it printed: the number the code printed, the PNG bytes of a cited
container file, variables kept across turns and hidden from another conversation, the SDK's own
stream accumulator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY
from tests.live_server import REPO, LiveServer
from tests.scripted_model import Code, Messages, ScriptedModel, Text

SCRIPT = REPO / "tests" / "clients" / "responses_flow.py"
SDKS = {
    "openai-1.109.1": Path(sys.executable),
    "openai-3.57.0": REPO / ".clients" / "openai3" / "bin" / "python",
}
RUN = re.compile(r"RUN<<(.*?)>>RUN", re.DOTALL)
CALL = re.compile(r"CALL<<(\w+)>>CALL")
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content or [] if isinstance(part, dict))


def brain(messages: Messages) -> Code | Text:
    """The scripted model of these tests: runs the RUN<<code>>RUN of the newest user message, then
    answers with what the code printed."""
    users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
    if not users:
        return Text("Nothing to do.")
    results = [m for m in messages[users[-1] + 1 :] if m.get("role") == "tool"]
    if results:
        return Text(f"The code printed: {results[-1].get('content')}")
    if "MODEL-FAILS" in _text(messages[users[-1]].get("content")):
        raise RuntimeError("the scripted model breaks this request off")
    called = CALL.search(_text(messages[users[-1]].get("content")))
    if called:
        return Code(
            "Paris", tool=called.group(1)
        )  # a call of the client's function, arguments {"code": "Paris"}
    found = RUN.search(_text(messages[users[-1]].get("content")))
    return Code(found.group(1)) if found else Text("Nothing to run.")


def flow(sdk: str, section: str, live_server: LiveServer, model: ScriptedModel, csv: Path) -> dict[str, Any]:
    python = SDKS[sdk]
    if not python.exists():
        pytest.fail(f"{python} is missing: `make test-setup` builds it")
    model.script(*[brain] * 40)
    done = subprocess.run(
        [str(python), str(SCRIPT), live_server.base_url, API_KEY, str(csv), section],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sdk"] == sdk.split("-")[1]
    result: dict[str, Any] = seen[section]
    assert "failed" not in result, result.get("trace")
    return result


def stripped(values: list[str | None]) -> list[str | None]:
    return [v.strip() if isinstance(v, str) else v for v in values]


def collapse(types: list[str]) -> list[str]:
    """Event types with each run of repeats (the deltas) shown once."""
    return [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]


# The canonical order of one code cell and its answer (spec §2.5).
CANONICAL = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call_code.delta",
    "response.code_interpreter_call_code.done",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.output_item.done",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]

sdks = pytest.mark.parametrize("sdk", list(SDKS))


@sdks
def test_code_interpreter_and_previous_response_id(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "code", live_server, scripted_model, quarterly_csv)
    assert seen["object"] == "response" and seen["status"] == "completed" and seen["error"] is None
    assert seen["output_types"] == ["code_interpreter_call", "message"]
    assert seen["call_status"] == "completed" and seen["call_id"].startswith("ci_")
    assert "pd.read_csv('synthetic_500_quarterly_results.csv')" in seen["call_code"]
    assert seen["container_id"].startswith("cntr_")
    assert seen["logs"].strip() == "500"  # the number the code printed, from the CSV given by file_ids
    assert "500" in seen["output_text"]
    assert seen["instructions"] == "You are a data analyst. Use the python tool."
    assert seen["tools"] == ["code_interpreter"]
    assert seen["usage_total"] > 0
    # Turn 2 runs in the same container: `rows` from turn 1 is still there.
    assert seen["second_logs"].strip() == "1000"
    assert seen["second_container_id"] == seen["container_id"]
    assert seen["second_previous"] == seen["id"]
    assert seen["second_instructions"] is None  # instructions are not carried over
    assert (
        len(seen["attached_logs"]) == 1 and "synthetic_500_quarterly_results.csv" in seen["attached_logs"][0]
    )
    assert seen["plain_outputs"] == [None]  # outputs only with the include
    assert seen["retrieved_status"] == "completed"
    assert seen["retrieved_output_ids"] == seen["second_output_ids"]
    assert seen["retrieved_outputs"] == [None]
    assert stripped(seen["retrieved_logs"]) == ["1000"]
    assert any(
        item["type"] == "message" and item["role"] == "user" and "print(rows * 2)" in (item["text"] or "")
        for item in seen["input_items"]
    ), seen["input_items"]
    assert seen["after_delete"] == 404


@sdks
def test_streaming_in_the_spec_order_and_the_sdk_accumulator(
    sdk: str,
    live_server: LiveServer,
    scripted_model: ScriptedModel,
    quarterly_csv: Path,
    pytestconfig: pytest.Config,
) -> None:
    seen = flow(sdk, "stream", live_server, scripted_model, quarterly_csv)
    assert collapse(seen["types"]) == CANONICAL, seen["types"]
    numbers = seen["sequence_numbers"]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert seen["response_ids"] and len(seen["response_ids"]) == 1
    code = "total = 0\nfor step in range(1, 8):\n    total += step * step\nprint(total)"
    assert seen["code_deltas"] == code and seen["code_done"] == [code]
    assert seen["text_done"] == [seen["text_deltas"]] and "140" in seen["text_deltas"]
    added, done = seen["added"], seen["done"]
    assert [a[:3] for a in added] == [d[:3] for d in done]  # same index, type and id
    assert [a[1] for a in added] == ["code_interpreter_call", "message"]
    assert [a[3] for a in added] == ["in_progress", "in_progress"]
    assert [d[3] for d in done] == ["completed", "completed"]
    assert seen["added_call"]["outputs"] is None and not seen["added_call"]["code"]
    assert seen["final_output_ids"] == [a[2] for a in added]
    ids = {a[0]: a[2] for a in added}
    for event in seen["wire"]:  # every event names the item (and part) it belongs to
        if "output_index" in event:
            assert event.get("item_id", event.get("item")) == ids[event["output_index"]], event
        if event["type"].startswith(("response.content_part", "response.output_text")):
            assert event["content_index"] == 0, event
    assert seen["done_call"]["code"] == code and seen["done_call"]["status"] == "completed"
    assert seen["done_call"]["outputs"] == [{"type": "logs", "logs": "140\n"}]
    assert seen["done_call"]["container_id"].startswith("cntr_")
    assert seen["lifecycle_statuses"] == ["in_progress", "in_progress", "completed"]
    usage = seen["final_usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] is not None and usage["output_tokens_details"] is not None
    assert seen["final_status"] == "completed"
    assert stripped(seen["final_logs"]) == ["140"]
    assert seen["final_text"] == seen["text_deltas"]
    # client.responses.stream(...) and get_final_response(): the SDK's own accumulator.
    assert seen["helper_types"][0] == "response.created" and seen["helper_types"][-1] == "response.completed"
    assert seen["helper_status"] == "completed"
    assert seen["helper_output_types"] == ["code_interpreter_call", "message"]
    assert stripped(seen["helper_logs"]) == ["42"]
    assert "42" in seen["helper_output_text"]
    report(
        pytestconfig,
        f"{sdk}: first streamed event after {seen['first_event_s'] * 1000:.0f} ms "
        f"(the client's first request; {seen['warm_first_event_s'] * 1000:.0f} ms on its next) "
        f"(whole one-cell response {seen['total_s']:.2f} s)",
    )


@sdks
def test_stream_replay_and_resume(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "replay", live_server, scripted_model, quarterly_csv)
    assert seen["replay_types"] == seen["types"]
    assert seen["replay_sequence_numbers"] == seen["sequence_numbers"]
    assert seen["resumed_sequence_numbers"] == [n for n in seen["sequence_numbers"] if n > 3]
    assert seen["helper_replay"] == {"id": seen["response_id"], "status": "completed", "text": seen["text"]}
    assert "10" in seen["text"]


@sdks
def test_replayed_output_items_keep_the_container(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    # The replayed code_interpreter_call is in the model's context: auto mode reuses its container
    # (spec §2.1), as the Agents SDK's to_input_list() idiom relies on.
    seen = flow(sdk, "replayed", live_server, scripted_model, quarterly_csv)
    assert seen["replayed_containers"] == [seen["container_id"]]
    assert stripped(seen["replayed_logs"]) == ["501"]


@sdks
def test_a_png_the_code_saved_is_cited_and_downloads(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "files", live_server, scripted_model, quarterly_csv)
    assert seen["output_types"] == ["code_interpreter_call", "message"]
    assert seen["logs"].strip() == "saved chart.png"
    annotation = seen["annotation"]
    assert annotation["type"] == "container_file_citation"
    assert annotation["filename"] == "chart.png"
    assert annotation["container_id"] == seen["container_id"]
    assert annotation["file_id"].startswith("cfile_")
    assert bytes.fromhex(seen["png_head"]) == PNG and seen["png_bytes"] > 1000
    assert {
        "id": annotation["file_id"],
        "path": "/mnt/data/chart.png",
        "source": "assistant",
        "bytes": seen["png_bytes"],
    } in seen["container_files"]
    assert seen["file_meta"] == {
        "path": "/mnt/data/chart.png",
        "source": "assistant",
        "bytes": seen["png_bytes"],
        "object": "container.file",
    }
    assert seen["auto_container"] == {"object": "container", "status": "running"}
    streamed = [*CANONICAL[:12], "response.output_text.annotation.added", *CANONICAL[12:]]
    assert collapse(seen["stream_types"]) == streamed, seen["stream_types"]
    [added] = seen["stream_annotations"]
    assert added["annotation_index"] == 0 and added["type"] == "container_file_citation"
    assert added["filename"] == "chart.png" and added["file_id"].startswith("cfile_")
    assert seen["stream_final_annotations"] == [{k: v for k, v in added.items() if k != "annotation_index"}]


@sdks
def test_a_conversation_keeps_variables_and_another_does_not_see_them(
    sdk: str,
    live_server: LiveServer,
    scripted_model: ScriptedModel,
    quarterly_csv: Path,
    pytestconfig: pytest.Config,
) -> None:
    seen = flow(sdk, "conversation", live_server, scripted_model, quarterly_csv)
    assert stripped(seen["first_logs"]) == ["1235"]
    assert stripped(seen["second_logs"]) == ["2468"]  # `secret` from turn 1
    assert seen["containers"][0] == seen["containers"][1]
    assert "2468" in seen["second_text"]
    assert seen["conversation_echo"] and seen["conversation_echo"].startswith("conv_")
    assert len(seen["other_logs"]) == 1 and "NameError" in seen["other_logs"][0]
    assert seen["other_container"] != seen["containers"][0]
    assert seen["first_page"] == {"count": 2, "has_more": True}
    turn = [("message", "user"), ("code_interpreter_call", None), ("message", "assistant")]
    assert [(i["type"], i["role"]) for i in seen["items"]] == turn * 2
    assert seen["item_outputs"] == [["1235\n", seen["containers"][0]], ["2468\n", seen["containers"][0]]]
    assert seen["item_outputs_hidden"] == [None, None]
    assert seen["items_desc_ids"] == [i["id"] for i in reversed(seen["items"])]
    assert seen["retrieved_item"]["id"] == seen["items"][0]["id"]
    assert seen["added_count"] == 1 and seen["delete_item_returns"] == "conversation"
    assert seen["metadata"] == {"suite": "changed"} and seen["updated_object"] == "conversation"
    assert seen["deleted"] == {"object": "conversation.deleted", "deleted": True}
    assert seen["after_delete"] == 404
    report(
        pytestconfig,
        f"{sdk}: two-turn code-interpreter conversation {seen['two_turns_s']:.2f} s (scripted model)",
    )


@sdks
def test_containers_and_their_files(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "containers", live_server, scripted_model, quarterly_csv)
    assert seen["created"] == {
        "object": "container",
        "name": "flow-container",
        "status": "running",
        "expires_after": {"anchor": "last_active_at", "minutes": 20},
    }
    assert seen["listed"] is True  # found by paging one at a time
    assert seen["retrieved_name"] == "flow-container"
    assert seen["uploaded"] == {"path": "/mnt/data/upload.csv", "source": "user", "object": "container.file"}
    assert seen["copied"]["path"] == "/mnt/data/synthetic_500_quarterly_results.csv"
    assert seen["copied"]["source"] == "user" and seen["copied"]["bytes"] == quarterly_csv.stat().st_size
    assert seen["content_equal"] is True
    assert seen["file_ids"] == seen["expected_ids"]
    assert seen["explicit_container_id"]
    assert (
        "upload.csv" in seen["explicit_logs"]
        and "synthetic_500_quarterly_results.csv" in seen["explicit_logs"]
    )
    assert seen["after_file_delete"] == [seen["uploaded_id"]]
    assert seen["after_delete"] == 404


@sdks
def test_background_polling_and_cancel(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "background", live_server, scripted_model, quarterly_csv)
    assert seen["initial_status"] in ("queued", "in_progress") and seen["background"] is True
    assert seen["final_status"] == "completed"
    assert stripped(seen["final_logs"]) == ["42"] and "42" in seen["final_text"]
    assert seen["cancel_returns"] == "cancelled"
    assert seen["cancelled_status"] == "cancelled" and seen["cancelled_stays"] == "cancelled"


@sdks
def test_function_calls_stream_and_continue(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "function", live_server, scripted_model, quarterly_csv)
    assert collapse(seen["types"]) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ], seen["types"]
    assert seen["argument_deltas"] == seen["arguments_done"] == ['{"code": "Paris"}']
    assert seen["call"]["name"] == "get_weather" and seen["call"]["status"] == "completed"
    assert seen["call"]["arguments"] == '{"code": "Paris"}' and seen["call"]["call_id"]
    assert seen["helper_call"] == seen["call"]["name"]
    assert seen["helper_parsed_arguments"] == '{"code": "Paris"}'
    assert "sunny" in seen["continued_text"]


@sdks
def test_a_broken_model_gives_a_failed_response(
    sdk: str, live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    seen = flow(sdk, "failure", live_server, scripted_model, quarterly_csv)
    assert seen["status"] == "failed" and seen["retrieved_status"] == "failed"
    assert seen["error"]["code"] == "server_error" and seen["error"]["message"]
    assert seen["stream_types"][:2] == ["response.created", "response.in_progress"]
    assert seen["stream_types"][-1] == "response.failed" and "response.completed" not in seen["stream_types"]
    assert seen["stream_status"] == "failed" and seen["stream_error"]["code"] == "server_error"


def report(config: pytest.Config, line: str) -> None:
    """Numbers for the closing note, shown on the terminal even when pytest captures output."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[timing] {line}")


# ---- Client mistakes, over plain HTTP: OpenAI's error shape and status, and nothing stored. ----


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]  # type: ignore[no-any-return]


def create(http: httpx.Client, **body: Any) -> httpx.Response:
    return http.post("/responses", json={"model": "gpt-4o-mini", "input": "hi", **body})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/responses/resp_nope"),
        ("DELETE", "/responses/resp_nope"),
        ("POST", "/responses/resp_nope/cancel"),
        ("GET", "/responses/resp_nope/input_items"),
        ("GET", "/conversations/conv_nope"),
        ("GET", "/conversations/conv_nope/items"),
        ("GET", "/containers/cntr_nope"),
        ("GET", "/containers/cntr_nope/files"),
        ("DELETE", "/containers/cntr_nope"),
    ],
)
def test_unknown_ids_are_404(http: httpx.Client, method: str, path: str) -> None:
    error = error_of(http.request(method, path), 404)
    assert "nope" in str(error["message"]) and "Unknown request URL" not in str(error["message"])


def test_an_unknown_container_is_404(http: httpx.Client) -> None:
    error = error_of(create(http, tools=[{"type": "code_interpreter", "container": "cntr_nope"}]), 404)
    assert "cntr_nope" in str(error["message"])


def test_an_unknown_previous_response_or_conversation_is_404(http: httpx.Client) -> None:
    assert "resp_nope" in str(error_of(create(http, previous_response_id="resp_nope"), 404)["message"])
    assert "conv_nope" in str(error_of(create(http, conversation="conv_nope"), 404)["message"])


def test_previous_response_id_with_conversation_is_400_and_stores_nothing(http: httpx.Client) -> None:
    conversation = http.post("/conversations", json={}).json()["id"]
    error = error_of(create(http, previous_response_id="resp_any", conversation=conversation), 400)
    assert "previous_response_id" in str(error["message"]) and "conversation" in str(error["message"])
    assert http.get(f"/conversations/{conversation}/items").json()["data"] == []


def test_an_unknown_include_is_400(http: httpx.Client) -> None:
    error = error_of(create(http, include=["code_interpreter_call.nonsense"]), 400)
    assert "include" in f"{error['param']} {error['message']}"


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search_preview"},
        {"type": "web_search"},
        {"type": "image_generation"},
        {"type": "computer_use_preview", "display_width": 800, "display_height": 600, "environment": "linux"},
    ],
)
def test_a_tool_agentbox_does_not_run_is_400_and_stores_nothing(
    http: httpx.Client, tool: dict[str, Any]
) -> None:
    conversation = http.post("/conversations", json={}).json()["id"]
    error = error_of(create(http, tools=[tool], conversation=conversation), 400)
    assert tool["type"] in str(error["message"])
    assert error["param"] is None or str(error["param"]).startswith("tools")
    assert http.get(f"/conversations/{conversation}/items").json()["data"] == []


@pytest.fixture(scope="module", autouse=True)
def idle_container(live_server: LiveServer) -> tuple[str, float]:
    """A container with the shortest lifetime a client may ask for (one idle minute), made when this
    module starts so that its minute passes while the other tests run; never touched after."""
    response = httpx.post(
        f"{live_server.base_url}/containers",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"name": "short", "expires_after": {"anchor": "last_active_at", "minutes": 1}},
    )
    assert response.status_code == 200, response.text
    return response.json()["id"], time.monotonic()


def test_an_expired_container_is_the_400_openai_gives(
    http: httpx.Client, idle_container: tuple[str, float]
) -> None:
    container_id, made = idle_container
    time.sleep(max(0.0, made + 61 - time.monotonic()))  # wait out the idle minute, for real
    response = create(http, tools=[{"type": "code_interpreter", "container": container_id}])
    assert error_of(response, 400) == {
        "message": "Container is expired.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert http.get(f"/containers/{container_id}").json()["status"] == "expired"


def test_sse_frames_name_their_event(
    http: httpx.Client, scripted_model: ScriptedModel, pytestconfig: pytest.Config
) -> None:
    """`event: <type>` then one `data:` line of JSON with the same type, frames split by a blank line."""
    scripted_model.script(*[brain] * 4)
    body = {
        "model": "m",
        "input": "RUN<<print(1)>>RUN",
        "tools": [{"type": "code_interpreter"}],
        "stream": True,
    }
    started = time.perf_counter()
    with http.stream("POST", "/responses", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.iter_raw()
        raw = next(chunks)
        first_bytes_s = time.perf_counter() - started
        raw += b"".join(chunks)
    total_s = time.perf_counter() - started
    report(
        pytestconfig,
        f"raw HTTP: first SSE bytes after {first_bytes_s * 1000:.0f} ms, "
        f"whole one-cell response (new auto container) {total_s * 1000:.0f} ms",
    )
    frames = [frame for frame in raw.decode().split("\n\n") if frame.strip()]
    names = []
    for frame in frames:
        lines = frame.split("\n")
        if lines == ["data: [DONE]"]:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        payload = json.loads(lines[1][len("data: ") :])
        assert payload["type"] == lines[0][len("event: ") :]
        names.append(payload["type"])
    assert names[0] == "response.created" and names[-1] == "response.completed"


@pytest.mark.parametrize("container", [None, "auto", {"type": "auto"}])
def test_the_code_tool_without_a_container_object_is_auto(
    http: httpx.Client, scripted_model: ScriptedModel, container: Any
) -> None:
    scripted_model.script(*[brain] * 4)
    tool: dict[str, Any] = {"type": "code_interpreter"}
    if container is not None:
        tool["container"] = container
    response = create(
        http, input="RUN<<print(3 * 3)>>RUN", tools=[tool], include=["code_interpreter_call.outputs"]
    )
    assert response.status_code == 200, response.text
    call = response.json()["output"][0]
    assert call["type"] == "code_interpreter_call" and call["container_id"].startswith("cntr_")
    assert call["outputs"] == [{"type": "logs", "logs": "9\n"}]


def test_an_unknown_memory_limit_is_400(http: httpx.Client) -> None:
    tool = {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "3g"}}
    error = error_of(create(http, tools=[tool]), 400)
    assert "memory_limit" in f"{error['param']} {error['message']}"


def test_an_unknown_include_on_retrieve_is_400(http: httpx.Client, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Text("hello"))
    made = create(http).json()
    error = error_of(http.get(f"/responses/{made['id']}", params={"include[]": "bogus"}), 400)
    assert "include" in f"{error['param']} {error['message']}"
