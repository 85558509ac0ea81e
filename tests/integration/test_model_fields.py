"""Every field reaches the model, and the prompt fits it: what the provider receives is the evidence.

A models file (written here) gives the scripted model several names with different capabilities:
`seer` takes images, `blind` does not, `small-window` has a 2,000-token context window and
`thinker` is a reasoning model.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.model_replies import function_call
from tests.sandbox_fixtures import cell_seconds
from tests.scripted_model import Code, Fail, ScriptedModel, Text, last_tool_output

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOO_LONG = Fail(
    400,
    "This model's maximum context length is 2048 tokens. However, your messages resulted in 9000 tokens.",
    code="context_length_exceeded",
)


def models_file(path: Path, base_url: str) -> Path:
    path.write_text(
        f"""
[providers.scripted]
base_url = "{base_url}"
api_key = "scripted"

[[models]]
match = "seer"
provider = "scripted"
vision = true

[[models]]
match = "blind"
provider = "scripted"

[[models]]
match = "small-window"
provider = "scripted"
context_window = 2000

[[models]]
match = "thinker"
provider = "scripted"
reasoning = true
"""
    )
    return path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("model-fields")
    live = LiveServer(
        root / "data",
        API_KEY,
        AGENTBOX_MODELS_FILE=str(models_file(root / "models.toml", scripted_model_server.base_url)),
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
    ).start()
    yield live
    live.stop()


@pytest.fixture
def api(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as client:
        yield client


def png() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def run(api: openai.OpenAI, model: str, thread_id: str, **options: Any) -> Any:
    assistant = api.beta.assistants.create(
        model=model, tools=options.pop("tools", []), response_format=options.pop("assistant_format", None)
    )
    return api.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=50, **options
    )


# --- response_format and reasoning_effort ------------------------------------------------------


def test_the_assistants_response_format_reaches_the_model_and_shows_on_the_run(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "as JSON"}])
    scripted_model.script(Text('{"ok": true}'), Text('{"n": 1}'))
    done = run(api, "blind", thread.id, assistant_format={"type": "json_object"})
    assert done.status == "completed", done.last_error
    assert scripted_model.requests[0]["response_format"] == {"type": "json_object"}
    assert done.response_format.type == "json_object"  # type: ignore[union-attr]

    schema = {"name": "count", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    override = {"type": "json_schema", "json_schema": schema}
    done = run(api, "blind", thread.id, assistant_format={"type": "json_object"}, response_format=override)
    assert scripted_model.requests[1]["response_format"] == override
    assert done.response_format.type == "json_schema"  # type: ignore[union-attr]


def test_reasoning_effort_reaches_a_reasoning_model_from_both_apis(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "think"}])
    scripted_model.script(Text("thought"), Text("thought again"))
    done = run(api, "thinker", thread.id, reasoning_effort="high", max_completion_tokens=500)
    assert done.status == "completed", done.last_error
    sent = scripted_model.requests[0]
    assert sent["reasoning_effort"] == "high" and sent["max_completion_tokens"] == 500

    response = api.responses.create(model="thinker", input="think", reasoning={"effort": "low"})
    assert response.status == "completed"
    assert scripted_model.requests[1]["reasoning_effort"] == "low"
    assert response.reasoning is not None and response.reasoning.effort == "low"


# --- images ------------------------------------------------------------------------------------


def test_a_vision_model_gets_the_newest_messages_images_and_only_those(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    image = api.files.create(file=("dot.png", png()), purpose="vision")
    remote = "https://example.com/cat.jpg"
    thread = api.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": remote}},
                ],
            }
        ]
    )
    scripted_model.script(Text("a dot and a cat"), Text("still a dot"))
    assert run(api, "seer", thread.id).status == "completed"
    newest = scripted_model.requests[0]["messages"][-1]
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    assert newest["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": remote}},
    ]

    # The next run's newest message has no image: the earlier ones are named, not sent again.
    api.beta.threads.messages.create(thread_id=thread.id, role="user", content="And now?")
    assert run(api, "seer", thread.id).status == "completed"
    messages = scripted_model.requests[1]["messages"]
    assert messages[1]["content"] == (
        f"What is in these?\n[image {image.id} shown earlier]\n[image {remote} shown earlier]"
    )
    assert messages[-1]["content"] == "And now?"


def test_images_to_a_model_without_vision_fail_the_run_naming_the_setting(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(
        messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}
        ]
    )
    failed = run(api, "blind", thread.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "invalid_prompt"
    assert "'blind'" in failed.last_error.message and "vision = true" in failed.last_error.message
    assert scripted_model.requests == []  # refused before the provider was asked


def test_responses_input_images_go_to_a_vision_model_and_fail_a_blind_one(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    image = api.files.create(file=("dot.png", png()), purpose="user_data")
    content = [
        {"type": "input_text", "text": "Describe."},
        {"type": "input_image", "file_id": image.id, "detail": "high"},
        {"type": "input_image", "image_url": "https://example.com/b.webp"},
    ]
    scripted_model.script(Text("two images"))
    seen = api.responses.create(model="seer", input=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert seen.status == "completed"
    parts = scripted_model.requests[0]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1]["image_url"]["detail"] == "high"

    blind = api.responses.create(model="blind", input=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert blind.status == "failed" and blind.error is not None
    assert blind.error.code == "invalid_prompt" and "vision" in blind.error.message
    assert len(scripted_model.requests) == 1


# --- context that fits -------------------------------------------------------------------------


def test_long_cell_output_reaches_the_model_as_head_and_tail_and_the_step_keeps_it_all(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "print a lot"}])
    seen: list[str] = []

    def answer(messages: list[dict[str, Any]]) -> Text:
        seen.append(last_tool_output(messages))
        return Text("printed")

    scripted_model.script(Code("print('a' * 30000 + 'b' * 30000)"), answer)
    done = run(api, "blind", thread.id, tools=[{"type": "code_interpreter"}])
    assert done.status == "completed", done.last_error
    (feedback,) = seen
    assert feedback.startswith("a" * 8000 + "\n[… 48,000 characters omitted of 60,000 …]\n")
    assert feedback.endswith("\n" + "b" * 4000)
    step = api.beta.threads.runs.steps.list(thread_id=thread.id, run_id=done.id, order="asc").data[0]
    logs = step.step_details.tool_calls[0].code_interpreter.outputs[0].logs  # type: ignore[union-attr]
    assert logs.strip() == "a" * 30000 + "b" * 30000


def test_auto_truncation_drops_the_oldest_turns_to_fit_the_context_window(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    # 12 messages of ~500 estimated tokens each; the window of 2,000 keeps 1,500 for the prompt.
    messages = [{"role": "user", "content": f"m{i} " + "x" * 2000} for i in range(12)]
    thread = api.beta.threads.create(messages=messages)  # type: ignore[arg-type]
    scripted_model.script(Text("fits"))
    assert run(api, "small-window", thread.id).status == "completed"
    sent = scripted_model.requests[0]["messages"]
    assert sent[0]["role"] == "system"
    kept = [m["content"].split()[0] for m in sent[1:]]
    assert kept == ["m10", "m11"]  # the newest, as many as fit
    assert sum(len(m["content"]) for m in sent) // 4 <= 1500


def test_a_context_length_refusal_cuts_harder_and_retries_once(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(8)])
    scripted_model.script(TOO_LONG, Text("fits now"))
    done = run(api, "blind", thread.id)
    assert done.status == "completed", done.last_error
    first, second = (len(r["messages"]) for r in scripted_model.requests)
    assert second < first and scripted_model.requests[1]["messages"][-1]["content"] == "m7"


def test_a_second_refusal_or_no_truncation_ends_the_run_incomplete(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": f"m{i}"} for i in range(8)])
    scripted_model.script(TOO_LONG, TOO_LONG)
    done = run(api, "blind", thread.id)
    assert done.status == "incomplete" and done.incomplete_details is not None
    assert done.incomplete_details.reason == "max_prompt_tokens"
    assert len(scripted_model.requests) == 2

    scripted_model.reset()
    scripted_model.script(TOO_LONG)
    last = {"type": "last_messages", "last_messages": 5}
    done = run(api, "blind", thread.id, truncation_strategy=last)
    assert done.status == "incomplete" and len(scripted_model.requests) == 1


def test_responses_truncation_auto_retries_and_disabled_ends_incomplete(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    scripted_model.script(TOO_LONG, Text("fits"), TOO_LONG)
    items = [{"role": "user", "content": f"m{i}"} for i in range(6)]
    auto = api.responses.create(model="blind", input=items, truncation="auto")  # type: ignore[arg-type]
    assert auto.status == "completed" and auto.output_text == "fits"
    disabled = api.responses.create(model="blind", input=items)  # type: ignore[arg-type]
    assert disabled.status == "incomplete" and disabled.incomplete_details is not None
    assert len(scripted_model.requests) == 3


# --- malformed tool arguments --------------------------------------------------------------------


def test_malformed_function_arguments_go_back_to_the_model_not_to_the_client(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    scripted_model.script(
        function_call("get_weather", "{city: Oslo"),
        function_call("get_weather", "{}"),
        function_call("get_weather", '{"city": "Oslo"}'),
    )
    waiting = run(api, "blind", thread.id, tools=[WEATHER])
    assert waiting.status == "requires_action"
    (call,) = waiting.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    told = [r["messages"][-1] for r in scripted_model.requests[1:]]
    assert told[0]["role"] == "tool" and told[0]["content"].startswith(
        "Error: the arguments of get_weather were not valid JSON (Expecting property name enclosed "
        "in double quotes at character 1); the call was not made."
    )
    assert "lack the required field(s) 'city'" in told[1]["content"]
    api.beta.threads.runs.cancel(thread_id=thread.id, run_id=waiting.id)


def test_responses_hand_only_the_corrected_call_to_the_client(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    weather = {"type": "function", **WEATHER["function"]}  # type: ignore[dict-item]
    scripted_model.script(
        function_call("get_weather", '{"city": '),
        function_call("get_weather", '{"city": "Oslo"}'),
        lambda m: Text(f"It is {last_tool_output(m)}"),
    )
    first = api.responses.create(model="blind", input="weather?", tools=[weather])  # type: ignore[list-item]
    bad, good = first.output
    assert bad.type == "function_call" and bad.status == "incomplete"
    assert good.type == "function_call" and good.status == "completed"
    second = api.responses.create(
        model="blind",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": good.call_id, "output": "9 C"}],
        tools=[weather],  # type: ignore[list-item]
    )
    assert second.output_text == "It is 9 C"
    calls = [m for m in scripted_model.requests[2]["messages"] if m.get("tool_calls")]
    assert [c["tool_calls"][0]["id"] for c in calls] == [good.call_id]  # the rejected call is gone


def test_code_with_broken_json_is_returned_and_raw_code_still_runs(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "compute"}])
    scripted_model.script(
        function_call("python", '{"code": "print(1)"'),
        function_call("python", "print(6 * 7)"),
        lambda m: Text(f"got {last_tool_output(m).strip()}"),
    )
    done = run(api, "blind", thread.id, tools=[{"type": "code_interpreter"}])
    assert done.status == "completed", done.last_error
    told = scripted_model.requests[1]["messages"][-1]["content"]
    assert told.startswith("Error: the arguments of python were not valid JSON") and "nothing ran" in told
    steps = api.beta.threads.runs.steps.list(thread_id=thread.id, run_id=done.id, order="asc").data
    rejected, ran = steps[0], steps[1]
    assert rejected.status == "failed" and rejected.last_error is not None
    assert rejected.step_details.tool_calls[0].code_interpreter.input == '{"code": "print(1)"'  # type: ignore[union-attr]
    assert ran.step_details.tool_calls[0].code_interpreter.outputs[0].logs.strip() == "42"  # type: ignore[union-attr]
    answer = api.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.value == "got 42"  # type: ignore[union-attr]


def test_a_model_that_keeps_sending_malformed_arguments_fails_the_run(
    api: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    thread = api.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    scripted_model.script(*[function_call("get_weather", "nope") for _ in range(4)])
    failed = run(api, "blind", thread.id, tools=[WEATHER])
    assert failed.status == "failed" and failed.last_error is not None
    assert "malformed tool arguments 4 times" in failed.last_error.message
