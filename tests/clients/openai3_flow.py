"""Drives a live agentbox with openai 3.x (run in .clients/openai3); prints what it saw as JSON.

argv: base_url api_key csv_path. The test that runs this scripts the model's replies beforehand.
"""

from __future__ import annotations

import json
import sys
import warnings

from openai import AssistantEventHandler, OpenAI

warnings.simplefilter("ignore", DeprecationWarning)  # the Assistants surface is deprecated upstream


class Names(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def on_event(self, event: object) -> None:
        self.names.append(event.event)  # type: ignore[attr-defined]


def main(base_url: str, api_key: str, csv_path: str) -> None:
    seen: dict[str, object] = {}
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    with open(csv_path, "rb") as handle:
        upload = client.files.create(file=handle, purpose="assistants")
    seen["file_status"] = client.files.retrieve(upload.id).status
    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [upload.id]}},
        metadata={"suite": "openai3"},
    )
    assistant = client.beta.assistants.update(assistant.id, name="renamed")
    seen["assistant_name"] = client.beta.assistants.retrieve(assistant.id).name
    seen["assistant_listed"] = assistant.id in [a.id for a in client.beta.assistants.list(limit=100)]

    thread = client.beta.threads.create(metadata={"k": "v"})
    thread = client.beta.threads.update(thread.id, metadata={"k": "w"})
    seen["thread_metadata"] = client.beta.threads.retrieve(thread.id).metadata
    for i in range(5):
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content=f"note {i}")
    seen["paged_messages"] = [
        m.content[0].text.value  # type: ignore[union-attr]
        for m in client.beta.threads.messages.list(thread_id=thread.id, limit=2, order="asc")
    ]
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    seen["poll_status"] = run.status
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    seen["poll_logs"] = steps[0].step_details.tool_calls[0].code_interpreter.outputs[0].logs  # type: ignore[union-attr]

    handler = Names()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as s:
        s.until_done()
        final = s.get_final_messages()
    seen["stream_events"] = handler.names
    seen["stream_parts"] = [p.type for p in final[0].content]
    image = final[0].content[0]
    seen["image_head"] = client.files.content(image.image_file.file_id).read()[:8].hex()  # type: ignore[union-attr]
    seen["deleted_file"] = client.files.delete(upload.id).deleted
    seen["deleted_assistant"] = client.beta.assistants.delete(assistant.id).deleted
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:4])
