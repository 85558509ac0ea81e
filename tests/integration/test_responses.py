"""The Responses engine with the openai SDK in .venv: context, function tools, options, limits.

The SDK-conformance flows (both SDK majors, streaming accumulators, containers, conversations) are
in test_responses_sdk.py; here each test pins one engine rule.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from tests.scripted_model import Code, ScriptedModel, Text, last_tool_output

CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}
OUTPUTS = ["code_interpreter_call.outputs"]


def test_previous_response_id_keeps_variables_and_the_container(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    scripted_model.script(
        Code("x = 6 * 7\nprint(x)"),
        lambda m: Text(f"x is {last_tool_output(m)}"),
        Code("print(x + 1)"),
        lambda m: Text(last_tool_output(m)),
    )
    first = client.responses.create(model="m", input="set x", tools=[CODE_TOOL], include=OUTPUTS)
    assert first.status == "completed"
    assert [o.type for o in first.output] == ["code_interpreter_call", "message"]
    call = first.output[0]
    assert call.type == "code_interpreter_call" and call.outputs is not None
    assert call.outputs[0].type == "logs" and call.outputs[0].logs.strip() == "42"
    assert first.output_text == "x is 42"

    second = client.responses.create(
        model="m", input="x + 1?", tools=[CODE_TOOL], previous_response_id=first.id, include=OUTPUTS
    )
    again = second.output[0]
    assert again.type == "code_interpreter_call" and again.container_id == call.container_id
    assert second.output_text.strip() == "43"
    # The model saw turn one (its code and result) before turn two's input.
    seen = scripted_model.requests[-1]["messages"]
    assert any("x = 6 * 7" in json.dumps(m) for m in seen)
    assert seen[-3]["role"] == "user" and seen[-3]["content"] == "x + 1?"


def test_outputs_only_when_included(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Code("print('hi')"), Text("done"))
    response = client.responses.create(model="m", input="go", tools=[CODE_TOOL])
    call = response.output[0]
    assert call.type == "code_interpreter_call" and call.outputs is None and call.code == "print('hi')"
    full = client.responses.retrieve(response.id, include=OUTPUTS)
    assert full.output[0].outputs[0].logs.strip() == "hi"  # type: ignore[union-attr,index]


def test_function_call_ends_the_response_and_its_output_continues_it(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    weather = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    scripted_model.script(Code("Paris", tool="get_weather"), lambda m: Text(f"It is {last_tool_output(m)}"))
    first = client.responses.create(model="m", input="weather?", tools=[weather])
    assert first.status == "completed"
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"code": "Paris"}
    offered = scripted_model.requests[-1]["tools"]
    assert [t["function"]["name"] for t in offered] == ["get_weather"]

    second = client.responses.create(
        model="m",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[weather],
    )
    assert second.output_text == "It is sunny"


def test_text_format_and_sampling_reach_the_model(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    scripted_model.script(Text('{"n": 1}'))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response = client.responses.create(
        model="m",
        input="json please",
        instructions="Answer in JSON.",
        temperature=0.2,
        top_p=0.9,
        text={"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}},
    )
    assert response.output_text == '{"n": 1}'
    request = scripted_model.requests[-1]
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "count", "schema": schema, "strict": True},
    }
    assert request["temperature"] == 0.2 and request["top_p"] == 0.9
    assert (
        request["messages"][0]["role"] == "system" and "Answer in JSON." in request["messages"][0]["content"]
    )


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Text("a long answer"))
    response = client.responses.create(model="m", input="talk", max_output_tokens=5)
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.usage is not None and response.usage.output_tokens == 7


def test_max_tool_calls_takes_the_tool_away(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Code("print(1)"), Text("enough"))
    response = client.responses.create(model="m", input="go", tools=[CODE_TOOL], max_tool_calls=1)
    assert response.output_text == "enough"
    assert [t["function"]["name"] for t in scripted_model.requests[0]["tools"]] == ["python"]
    assert "tools" not in scripted_model.requests[1]


def test_background_then_retrieve_and_replay_the_stream(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    scripted_model.script(Code("import time; time.sleep(0.5); print('slept')"), Text("awake"))
    started = client.responses.create(model="m", input="sleep", tools=[CODE_TOOL], background=True)
    assert started.status in ("queued", "in_progress") and started.background is True
    deadline = time.monotonic() + 30
    response = client.responses.retrieve(started.id)
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        response = client.responses.retrieve(started.id)
    assert response.status == "completed" and response.output_text == "awake"

    replay = list(client.responses.retrieve(started.id, stream=True))
    assert replay[0].type == "response.created" and replay[-1].type == "response.completed"
    assert [e.sequence_number for e in replay] == list(range(len(replay)))
    tail = list(client.responses.retrieve(started.id, stream=True, starting_after=3))
    assert [e.sequence_number for e in tail] == list(range(4, len(replay)))


def test_cancel_a_background_response(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Code("import time; time.sleep(30)"), Text("never"))
    started = client.responses.create(model="m", input="wait", tools=[CODE_TOOL], background=True)
    deadline = time.monotonic() + 30
    while not scripted_model.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the code is running now
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(lambda: [e.type for e in client.responses.retrieve(started.id, stream=True)])
        time.sleep(0.5)  # the watcher is following the live stream
        cancelled = client.responses.cancel(started.id)
        assert cancelled.status == "cancelled"
        assert client.responses.retrieve(started.id).status == "cancelled"
        # a client following the stream sees it end instead of waiting for ever
        seen = watching.result(timeout=30)
    assert seen[0] == "response.created"


def test_input_items_store_false_and_delete(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    scripted_model.script(Text("one"), Text("two"))
    response = client.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    items = list(client.responses.input_items.list(response.id, order="asc"))
    assert [i.content[0].text for i in items] == ["first", "second"]  # type: ignore[union-attr]

    unstored = client.responses.create(model="m", input="forget me", store=False)
    assert unstored.output_text == "two"
    try:
        client.responses.retrieve(unstored.id)
        raise AssertionError("an unstored response was kept")
    except openai.NotFoundError:
        pass
    client.responses.delete(response.id)
    try:
        client.responses.retrieve(response.id)
        raise AssertionError("a deleted response was kept")
    except openai.NotFoundError:
        pass


def test_bad_input_is_a_clear_4xx(http: httpx.Client, scripted_model: ScriptedModel) -> None:
    cases = [
        ({"model": "m", "input": "x", "previous_response_id": "resp_a", "conversation": "conv_b"}, 400, None),
        ({"model": "m", "input": "x", "include": ["nonsense"]}, 400, "include"),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}]}, 400, "tools[0].type"),
        (
            {"model": "m", "input": "x", "tools": [{"type": "code_interpreter", "container": "cntr_no"}]},
            404,
            None,
        ),
        ({"model": "m", "input": "x", "previous_response_id": "resp_missing"}, 404, "previous_response_id"),
        ({"input": "x"}, 400, "model"),
        ({"model": "m", "input": [{"type": "mystery"}]}, 400, "input[0].type"),
    ]
    for body, status, param in cases:
        answer = http.post("/responses", json=body)
        assert answer.status_code == status, (body, answer.text)
        error = answer.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"
        assert error["param"] == param, (body, error)
    assert scripted_model.requests == []  # nothing reached the model


def test_input_file_parts_land_in_the_container(
    client: openai.OpenAI, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    with open(quarterly_csv, "rb") as handle:
        upload = client.files.create(file=handle, purpose="user_data")
    scripted_model.script(
        Code(f"import pandas as pd\nprint(len(pd.read_csv('{quarterly_csv.name}')))"),
        lambda m: Text(last_tool_output(m)),
    )
    response = client.responses.create(
        model="m",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "How many rows?"},
                    {"type": "input_file", "file_id": upload.id},
                ],
            }
        ],
        tools=[CODE_TOOL],
        metadata={"case": "input-file"},
    )
    assert response.output_text.strip() == "500"
    assert response.metadata == {"case": "input-file"}
    call = response.output[0]
    assert call.type == "code_interpreter_call"
    names = [f.path for f in client.containers.files.list(call.container_id)]
    assert f"/mnt/data/{quarterly_csv.name}" in names
    system = scripted_model.requests[0]["messages"][0]["content"]
    assert f"/mnt/data/{quarterly_csv.name}" in system


def test_code_and_function_arguments_stream(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    lookup = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    scripted_model.script(Code("print('streamed ' * 3)"), Code("abc", tool="lookup"))
    events = list(client.responses.create(model="m", input="go", tools=[CODE_TOOL, lookup], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    code = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    assert code == "print('streamed ' * 3)" and kinds.count("response.code_interpreter_call_code.delta") > 1
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"code": "abc"}
    assert kinds.index("response.code_interpreter_call.interpreting") < kinds.index(
        "response.code_interpreter_call.completed"
    )
    final = events[-1].response  # type: ignore[union-attr]
    assert [o.type for o in final.output] == ["code_interpreter_call", "function_call"]
