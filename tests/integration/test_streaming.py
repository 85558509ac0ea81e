"""Streaming runs with the real openai SDK: the event order of spec §1.6 and the SDK's own helpers."""

from __future__ import annotations

import time

import httpx
import openai
from typing_extensions import override

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.run_events import Recorder
from tests.scripted_model import Code, ScriptedModel, Text, last_tool_output

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nprint('plotted')\nplt.show()"


def collapse(names: list[str]) -> list[str]:
    """The event names with runs of the same delta event folded into one."""
    folded: list[str] = []
    for name in names:
        if not (name.endswith(".delta") and folded and folded[-1] == name):
            folded.append(name)
    return folded


def test_runs_stream_emits_the_spec_event_order(client: openai.OpenAI, scripted_model: ScriptedModel) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plot something"}])
    scripted_model.script(Code(PLOT), Text("Here is the plot, as asked."))
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as s:
        s.until_done()
        final_run = s.get_final_run()
        final_messages = s.get_final_messages()

    assert collapse(recorder.names) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert "".join(recorder.code) == PLOT
    assert recorder.names.count("thread.run.step.delta") > 3  # input streamed in pieces, then outputs
    assert "".join(recorder.logs) == "plotted\n"
    assert "".join(recorder.text) == "Here is the plot, as asked."
    assert recorder.names.count("thread.message.delta") > 2  # the image part, then text token by token
    assert final_run.status == "completed"
    (message,) = final_messages
    assert [part.type for part in message.content] == ["image_file", "text"]
    stored = client.beta.threads.messages.retrieve(thread_id=thread.id, message_id=message.id)
    assert stored.content == message.content


def test_create_and_run_stream_starts_with_the_new_thread(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    scripted_model.script(Code("print(2 ** 10)"), lambda m: Text(f"It is {last_tool_output(m).strip()}."))
    recorder = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "2**10?"}]},
        event_handler=recorder,
    ) as s:
        s.until_done()
    assert recorder.names[0] == "thread.created"
    assert recorder.names[-1] == "thread.run.completed"
    assert "".join(recorder.text) == "It is 1024."


def test_raw_sse_framing_is_one_line_json_and_ends_with_done(
    live_server: LiveServer, client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "say hi"}])
    scripted_model.script(Text("héllo ✓"))
    with httpx.stream(
        "POST",
        f"{live_server.base_url}/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read()
    assert body.isascii()  # non-ASCII is escaped so per-chunk decoding can't split a character
    events = body.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "event: done\ndata: [DONE]"
    for event in events[:-1]:
        name_line, data_line = event.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
    assert "h\\u00e9llo \\u2713" in body.decode()


def test_a_failing_model_ends_the_stream_with_run_failed_then_done(
    tmp_path: object, client: openai.OpenAI, live_server: LiveServer, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "loop"}])
    # More code calls than the run's step limit allows (the server runs with the default of 12).
    scripted_model.script(*[Code("1")] * 13)
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as s:
        s.until_done()
        final = s.get_final_run()
    assert recorder.names[-1] == "thread.run.failed"
    assert final.status == "failed" and final.last_error is not None
    assert "limit of 12 code executions" in final.last_error.message


class TimedRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.at: dict[str, float] = {}
        self.logs_at: list[float] = []
        self.snapshots: list[str] = []

    @override
    def on_event(self, event: object) -> None:
        super().on_event(event)
        self.at.setdefault(event.event, time.monotonic())  # type: ignore[attr-defined]

    @override
    def on_tool_call_delta(self, delta: object, snapshot: object) -> None:
        before = len(self.logs)
        super().on_tool_call_delta(delta, snapshot)
        if len(self.logs) > before:
            self.logs_at.append(time.monotonic())
            outputs = snapshot.code_interpreter.outputs  # type: ignore[attr-defined]
            self.snapshots.append(outputs[0].logs)


def test_code_output_streams_live_as_step_deltas(
    client: openai.OpenAI, scripted_model: ScriptedModel
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count slowly"}])
    scripted_model.script(
        Code("import time\nprint('tick', flush=True)\ntime.sleep(2)\nprint('tock')\n1/0"), Text("ok")
    )
    recorder = TimedRecorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as s:
        s.until_done()
    # 'tick' reached the client while the cell still slept, before its step completed.
    assert recorder.logs[0] == "tick\n"
    assert recorder.at["thread.run.step.completed"] - recorder.logs_at[0] >= 1.5
    # The deltas add up to the step's logs exactly once: live output, then the rest at the end.
    logs = "".join(recorder.logs)
    assert logs.startswith("tick\ntock\nTraceback")
    assert logs.rstrip().endswith("ZeroDivisionError: division by zero")
    assert recorder.snapshots[-1] == logs  # what the SDK accumulated from the deltas
    run = s.get_final_run()
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id)
    [step] = [step for step in steps if step.type == "tool_calls"]
    assert step.step_details.tool_calls[0].code_interpreter.outputs[0].logs == logs  # type: ignore[union-attr]
