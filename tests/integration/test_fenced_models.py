"""A model configured `native_tools = false` writes ```python blocks; agentbox runs them as code calls.

The scripted model stands for such a model: its replies are plain text with fenced code, and the
requests it received show what a model without tool calling is sent (no `tools`, the output as a
user message).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.beta.threads.runs import CodeInterpreterToolCall

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.run_events import Recorder
from tests.sandbox_fixtures import cell_seconds
from tests.scripted_model import Messages, ScriptedModel, Text

MODEL = "small-coder"
CODE = "total = sum(i * i for i in range(10))\nprint(f'total={total}')"
LOGS = "total=285\n"  # what the sandbox prints; the model never says it
FIRST_TURN = f"I will compute it.\n\n```python\n{CODE}\n```\nOutput: (the model guessing)\n"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("fenced")
    models_file = root / "models.toml"
    models_file.write_text(
        f"""
[providers.local]
base_url = "{scripted_model_server.base_url}"
api_key = "scripted"
native_tools = false

[[models]]
match = "{MODEL}"
provider = "local"
"""
    )
    live = LiveServer(
        root / "data",
        API_KEY,
        AGENTBOX_MODELS_FILE=str(models_file),
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
    ).start()
    yield live
    live.stop()


@pytest.fixture
def fenced_client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as client:
        yield client


def final_answer(messages: Messages) -> Text:
    """The model's second turn: it reads the output from the last user message."""
    output = str(messages[-1]["content"])
    return Text(f"The total is {output.split('total=')[1].split()[0]}.")


def assert_fenced_protocol(requests: list[dict[str, Any]]) -> None:
    """Both turns went without tools; the second saw the code as the model's own text, the output
    as a user message."""
    assert len(requests) == 2
    for sent in requests:
        assert "tools" not in sent and "tool_choice" not in sent and "parallel_tool_calls" not in sent
        assert all(m["role"] in ("system", "user", "assistant") for m in sent["messages"])
        assert all("tool_calls" not in m for m in sent["messages"])
        assert "```python" in sent["messages"][0]["content"]  # the system message says how to run code
    assistant_turn, output_turn = requests[1]["messages"][-2:]
    assert assistant_turn == {"role": "assistant", "content": f"I will compute it.\n\n```python\n{CODE}\n```"}
    assert output_turn["role"] == "user"
    assert output_turn["content"].startswith("Output of the code:\n")
    assert LOGS.strip() in output_turn["content"]


def test_an_assistants_run_executes_the_fenced_code(
    fenced_client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    client = fenced_client
    scripted_model.script(Text(FIRST_TURN), final_answer)
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum of squares below 10?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)

    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["message_creation", "tool_calls", "message_creation"]
    [call] = steps[1].step_details.tool_calls  # type: ignore[union-attr]
    assert isinstance(call, CodeInterpreterToolCall)
    assert call.code_interpreter.input == CODE
    assert [(o.type, getattr(o, "logs", None)) for o in call.code_interpreter.outputs] == [("logs", LOGS)]
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    texts = [m.content[0].text.value for m in messages if m.role == "assistant"]  # type: ignore[union-attr]
    assert texts == ["I will compute it.", "The total is 285."]
    assert_fenced_protocol(scripted_model.requests)


def test_a_streamed_run_never_shows_the_fence_and_streams_the_code(
    fenced_client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    client = fenced_client
    scripted_model.script(Text(FIRST_TURN), final_answer)
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Sum of squares below 10?"}])
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()

    assert run.status == "completed", run.last_error
    assert "".join(recorder.text) == "I will compute it.The total is 285."
    assert not any("`" in piece for piece in recorder.text)
    assert "".join(recorder.code) == CODE
    assert len(recorder.code) > 2  # the code streams as the model writes it, not at the end
    assert_fenced_protocol(scripted_model.requests)


def test_a_response_executes_the_fenced_code(
    fenced_client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    scripted_model.script(Text(FIRST_TURN), final_answer)
    response = fenced_client.responses.create(
        model=MODEL,
        input="Sum of squares below 10?",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
    )

    assert response.status == "completed", response.error
    assert [o.type for o in response.output] == ["message", "code_interpreter_call", "message"]
    call = response.output[1]
    assert call.type == "code_interpreter_call" and call.code == CODE
    assert call.outputs is not None
    assert [(o.type, getattr(o, "logs", None)) for o in call.outputs] == [("logs", LOGS)]
    assert response.output_text == "I will compute it.The total is 285."
    assert_fenced_protocol(scripted_model.requests)


def test_a_function_call_in_a_json_block_reaches_the_client(
    fenced_client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    weather = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    call_block = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    scripted_model.script(
        Text(call_block), lambda m: Text(f"Paris: {str(m[-1]['content']).splitlines()[-1]}")
    )
    first = fenced_client.responses.create(model=MODEL, input="Weather in Paris?", tools=[weather])  # type: ignore[list-item]
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert "get_weather" in scripted_model.requests[0]["messages"][0]["content"]

    second = fenced_client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=[weather],  # type: ignore[list-item]
    )
    assert second.output_text == "Paris: sunny, 21 C"
    sent = scripted_model.requests[1]
    assert "tools" not in sent
    assert sent["messages"][-2] == {"role": "assistant", "content": call_block}
    assert sent["messages"][-1] == {"role": "user", "content": "Result of get_weather:\nsunny, 21 C"}
