"""Function tools: the run asks the client, waits in requires_action, and resumes on submit."""

from __future__ import annotations

import json

import openai
import pytest

from tests.model_replies import function_call
from tests.scripted_model import Code, Messages, ScriptedModel, Text, last_tool_output

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def report(messages: Messages) -> Text:
    return Text(f"Weather: {last_tool_output(messages)}")


def test_function_call_requires_action_then_completes(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}, WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    scripted_model.script(function_call("get_weather", json.dumps({"city": "Oslo"})), report)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert "Oslo" in call.function.arguments
    # The model was offered both tools.
    offered = {t["function"]["name"] for t in scripted_model.requests[0]["tools"]}
    assert offered == {"python", "get_weather"}

    with pytest.raises(openai.BadRequestError, match="call_wrong"):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": "call_wrong", "output": "x"}]
        )

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "12 C, rain"}]
    )
    assert done.status == "completed", done.last_error
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.value == "Weather: 12 C, rain"  # type: ignore[union-attr]
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    function_step = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert function_step.function.output == "12 C, rain"  # type: ignore[union-attr]


def test_submit_tool_outputs_stream(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Rome?"}])
    scripted_model.script(function_call("get_weather", json.dumps({"city": "Rome"})), report)
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as first:
        first.until_done()
        waiting = first.get_final_run()
    assert waiting.status == "requires_action"
    call = waiting.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=waiting.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "30 C, sun"}],
    ) as resumed:
        text = "".join(resumed.text_deltas)
        final = resumed.get_final_run()
    assert text == "Weather: 30 C, sun"
    assert final.status == "completed"


def test_max_completion_tokens_ends_the_run_incomplete(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "talk"}])
    # The scripted model charges 7 completion tokens a turn, so a budget of 16 runs out in the 3rd.
    scripted_model.script(Code("1"), Code("2"), Text("cut short"), Text("never asked for"))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=16, poll_interval_ms=50
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.status == "incomplete" and answer.role == "assistant"
    assert answer.incomplete_details is not None and answer.incomplete_details.reason == "max_tokens"
    assert len(scripted_model.requests) == 3
