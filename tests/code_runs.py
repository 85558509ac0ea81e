"""Runs code in a new thread through the real API and the scripted model, for tests that only need
what it printed."""

from __future__ import annotations

import openai

from tests.scripted_model import Code, ScriptedModel, Text


def printed_in_new_thread(
    client: openai.OpenAI, scripted_model: ScriptedModel, file_ids: list[str], code: str
) -> str:
    """What `code` printed in a new thread's session holding these files."""
    assistant = client.beta.assistants.create(
        model="m",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": file_ids}},
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "list"}])
    scripted_model.script(Code(code), Text("listed"))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    details = steps.data[0].step_details
    assert details.type == "tool_calls"
    return "".join(o.logs for o in details.tool_calls[0].code_interpreter.outputs if o.type == "logs")
