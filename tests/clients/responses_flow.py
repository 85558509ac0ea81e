"""Drives a live agentbox's Responses, Conversations and Containers with an unmodified openai SDK.

Run by both openai 1.109.1 (the server's .venv) and 3.57.0 (.clients/openai3); prints what it saw
as one JSON object, one key per section. A section that raises records its error instead, so one
missing route does not hide what the others saw.

argv: base_url api_key csv_path section[,section…]. The model is scripted by the test: a user
message carrying RUN<<code>>RUN gets a call of the python tool with that code, and the tool's
result gets a text answer that quotes it (tests/integration/test_responses_sdk.py `brain`).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import openai
from openai import OpenAI

MODEL = "gpt-4o-mini"
OUTPUTS = "code_interpreter_call.outputs"
PNG_CODE = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "plt.bar(['a', 'b'], [3, 5])\nplt.savefig('chart.png')\nprint('saved chart.png')"
)
STREAM_CODE = "total = 0\nfor step in range(1, 8):\n    total += step * step\nprint(total)"


def run(code: str) -> str:
    """The user's words: the scripted model runs the code between the markers."""
    return f"Please run this. RUN<<{code}>>RUN"


def auto(file_ids: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"type": "auto"}
    if file_ids:
        container["file_ids"] = file_ids
    return {"type": "code_interpreter", "container": container}


def calls(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "code_interpreter_call"]


def logs(call: Any) -> str | None:
    if call.outputs is None:
        return None
    return "".join(o.logs for o in call.outputs if o.type == "logs")


def status_of(action: Callable[[], object]) -> int | str:
    """The HTTP status an SDK call failed with (or 'ok')."""
    try:
        action()
    except openai.APIStatusError as error:
        return error.status_code
    return "ok"


def section_code(client: OpenAI, csv_path: str) -> dict[str, Any]:
    with open(csv_path, "rb") as handle:
        upload = client.files.create(file=handle, purpose="assistants")
    code = "import pandas as pd\nrows = len(pd.read_csv('synthetic_500_quarterly_results.csv'))\nprint(rows)"
    first = client.responses.create(
        model=MODEL,
        instructions="You are a data analyst. Use the python tool.",
        input=run(code),
        tools=[auto([upload.id])],
        include=[OUTPUTS],
    )
    call = calls(first)[0]
    seen: dict[str, Any] = {
        "id": first.id,
        "object": first.object,
        "status": first.status,
        "output_types": [item.type for item in first.output],
        "call_id": call.id,
        "call_status": call.status,
        "call_code": call.code,
        "container_id": call.container_id,
        "logs": logs(call),
        "output_text": first.output_text,
        "instructions": first.instructions,
        "tools": [tool.type for tool in first.tools],
        "usage_total": first.usage.total_tokens if first.usage else None,
        "error": first.error,
    }
    # Turn 2 chains on turn 1: the same container, so `rows` is still defined.
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=run("print(rows * 2)"),
        tools=[auto()],
        include=[OUTPUTS],
    )
    second_call = calls(second)[0]
    seen["second_logs"] = logs(second_call)
    seen["second_container_id"] = second_call.container_id
    seen["second_previous"] = second.previous_response_id
    seen["second_instructions"] = second.instructions
    # A file in the input is copied into the container.
    attached = client.responses.create(
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": run("import os\nprint(sorted(os.listdir('.')))")},
                    {"type": "input_file", "file_id": upload.id},
                ],
            }
        ],
        tools=[auto()],
        include=[OUTPUTS],
    )
    seen["attached_logs"] = [logs(c) for c in calls(attached)]
    # Outputs only when asked for.
    plain = client.responses.create(
        model=MODEL, previous_response_id=second.id, input=run("print('quiet')"), tools=[auto()]
    )
    seen["plain_outputs"] = [c.outputs for c in calls(plain)]
    retrieved = client.responses.retrieve(second.id)
    seen["retrieved_status"] = retrieved.status
    seen["retrieved_output_ids"] = [item.id for item in retrieved.output]
    seen["second_output_ids"] = [item.id for item in second.output]
    seen["retrieved_outputs"] = [c.outputs for c in calls(retrieved)]
    with_outputs = client.responses.retrieve(second.id, include=[OUTPUTS])
    seen["retrieved_logs"] = [logs(c) for c in calls(with_outputs)]
    items = list(client.responses.input_items.list(second.id, order="asc"))
    seen["input_items"] = [
        {"type": i.type, "role": getattr(i, "role", None), "text": _text_of(i)} for i in items
    ]
    client.responses.delete(plain.id)
    seen["after_delete"] = status_of(lambda: client.responses.retrieve(plain.id))
    return seen


def _text_of(item: Any) -> str | None:
    content = getattr(item, "content", None)
    if not isinstance(content, list):
        return None
    return "".join(getattr(part, "text", "") or "" for part in content)


def _where(event: Any) -> dict[str, Any]:
    """Which item (and part) an event is about, as its fields say."""
    fields = ("output_index", "item_id", "content_index", "annotation_index")
    seen = {name: getattr(event, name) for name in fields if getattr(event, name, None) is not None}
    item = getattr(event, "item", None)
    if item is not None:
        seen["item"] = item.id
    return {"type": event.type, **seen}


def _plain(value: Any) -> dict[str, Any]:
    """openai 1.x types the annotation of annotation.added as `object` (a dict), 3.x as a model."""
    return value if isinstance(value, dict) else value.model_dump(mode="json")


def section_stream(client: OpenAI, csv_path: str) -> dict[str, Any]:
    started = time.perf_counter()
    stream = client.responses.create(
        model=MODEL, input=run(STREAM_CODE), tools=[auto()], include=[OUTPUTS], stream=True
    )
    events: list[Any] = []
    first_event_s = None
    for event in stream:
        if first_event_s is None:
            first_event_s = time.perf_counter() - started
        events.append(event)
    total_s = time.perf_counter() - started
    final = events[-1].response if events and events[-1].type == "response.completed" else None
    seen: dict[str, Any] = {
        "types": [e.type for e in events],
        "sequence_numbers": [e.sequence_number for e in events],
        "first_event_s": first_event_s,
        "total_s": total_s,
        "code_deltas": "".join(
            e.delta for e in events if e.type == "response.code_interpreter_call_code.delta"
        ),
        "code_done": [e.code for e in events if e.type == "response.code_interpreter_call_code.done"],
        "text_deltas": "".join(e.delta for e in events if e.type == "response.output_text.delta"),
        "text_done": [e.text for e in events if e.type == "response.output_text.done"],
        "response_ids": sorted({e.response.id for e in events if hasattr(e, "response")}),
        "added": [
            [e.output_index, e.item.type, e.item.id, e.item.status]
            for e in events
            if e.type.endswith("item.added")
        ],
        "done": [
            [e.output_index, e.item.type, e.item.id, e.item.status]
            for e in events
            if e.type.endswith("item.done")
        ],
        "added_call": next(
            (e.item.model_dump(mode="json") for e in events if e.type.endswith("item.added")), None
        ),
        "done_call": next(
            (e.item.model_dump(mode="json") for e in events if e.type.endswith("item.done")), None
        ),
        "wire": [_where(e) for e in events],
        "lifecycle_statuses": [e.response.status for e in events if hasattr(e, "response")],
        "final_usage": final.usage.model_dump(mode="json") if final and final.usage else None,
        "final_output_ids": [item.id for item in final.output] if final else None,
        "final_logs": [logs(c) for c in calls(final)] if final else None,
        "final_text": final.output_text if final else None,
        "final_status": final.status if final else None,
    }
    # The SDK's own accumulator.
    started = time.perf_counter()
    with client.responses.stream(
        model=MODEL, input=run("print(6 * 7)"), tools=[auto()], include=[OUTPUTS]
    ) as managed:
        helper_types = []
        for event in managed:
            if not helper_types:
                seen["warm_first_event_s"] = time.perf_counter() - started
            helper_types.append(event.type)
        response = managed.get_final_response()
    seen["helper_types"] = helper_types
    seen["helper_output_types"] = [item.type for item in response.output]
    seen["helper_output_text"] = response.output_text
    seen["helper_logs"] = [logs(c) for c in calls(response)]
    seen["helper_status"] = response.status
    seen["helper_id"] = response.id
    return seen


def section_replay(client: OpenAI, csv_path: str) -> dict[str, Any]:
    """A stored response's stream again: GET /responses/{id}?stream=true, whole and after a cursor."""
    events = list(
        client.responses.create(model=MODEL, input=run("print(5 + 5)"), tools=[auto()], stream=True)
    )
    response_id = events[0].response.id
    replay = list(client.responses.retrieve(response_id, stream=True))
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=3))
    with client.responses.stream(response_id=response_id) as managed:  # the SDK's own resume helper
        replayed = managed.get_final_response()
    return {
        "types": [e.type for e in events],
        "sequence_numbers": [e.sequence_number for e in events],
        "replay_types": [e.type for e in replay],
        "replay_sequence_numbers": [e.sequence_number for e in replay],
        "resumed_sequence_numbers": [e.sequence_number for e in resumed],
        "helper_replay": {"id": replayed.id, "status": replayed.status, "text": replayed.output_text},
        "response_id": response_id,
        "text": events[-1].response.output_text,
    }


def section_replayed(client: OpenAI, csv_path: str) -> dict[str, Any]:
    """Stateless chaining: a response's output items replayed as input (store=False); auto mode
    reuses the container of the replayed code_interpreter_call, so its variables are still there."""
    code = "carried = 500\nprint(carried)"
    first = client.responses.create(model=MODEL, input=run(code), tools=[auto()], include=[OUTPUTS])
    seen: dict[str, Any] = {"container_id": calls(first)[0].container_id}
    replayed = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": run(code)},
            *[item.model_dump(mode="json", exclude_none=True) for item in first.output],
            {"role": "user", "content": run("print(carried + 1)")},
        ],
        tools=[auto()],
        include=[OUTPUTS],
        store=False,
    )
    seen["replayed_logs"] = [logs(c) for c in calls(replayed)]
    seen["replayed_containers"] = [c.container_id for c in calls(replayed)]
    return seen


def section_files(client: OpenAI, csv_path: str) -> dict[str, Any]:
    response = client.responses.create(model=MODEL, input=run(PNG_CODE), tools=[auto()], include=[OUTPUTS])
    call = calls(response)[0]
    last = response.output[-1]
    annotation = last.content[-1].annotations[-1]  # where Microsoft's sample reads it
    seen: dict[str, Any] = {
        "output_types": [item.type for item in response.output],
        "call_output_types": [o.type for o in call.outputs or []],
        "logs": logs(call),
        "annotation": annotation.model_dump(mode="json"),
        "container_id": call.container_id,
    }
    content = client.containers.files.content.retrieve(
        annotation.file_id, container_id=annotation.container_id
    )
    data = content.read()
    seen["png_head"] = data[:8].hex()
    seen["png_bytes"] = len(data)
    listed = client.containers.files.list(call.container_id)
    seen["container_files"] = [
        {"id": f.id, "path": f.path, "source": f.source, "bytes": f.bytes} for f in listed
    ]
    meta = client.containers.files.retrieve(annotation.file_id, container_id=call.container_id)
    seen["file_meta"] = {"path": meta.path, "source": meta.source, "bytes": meta.bytes, "object": meta.object}
    container = client.containers.retrieve(call.container_id)
    seen["auto_container"] = {"status": container.status, "object": container.object}
    # The same, streamed: the citation arrives as response.output_text.annotation.added.
    events = list(client.responses.create(model=MODEL, input=run(PNG_CODE), tools=[auto()], stream=True))
    seen["stream_types"] = [e.type for e in events]
    seen["stream_annotations"] = [
        {**_plain(e.annotation), "annotation_index": e.annotation_index}
        for e in events
        if e.type == "response.output_text.annotation.added"
    ]
    final = events[-1].response
    seen["stream_final_annotations"] = [
        a.model_dump(mode="json") for a in final.output[-1].content[-1].annotations
    ]
    return seen


def section_conversation(client: OpenAI, csv_path: str) -> dict[str, Any]:
    conversation = client.conversations.create(metadata={"suite": "responses"})
    started = time.perf_counter()
    first = client.responses.create(
        model=MODEL,
        conversation=conversation.id,
        input=run("secret = 1234\nprint(secret + 1)"),
        tools=[auto()],
        include=[OUTPUTS],
    )
    second = client.responses.create(
        model=MODEL,
        conversation=conversation.id,
        input=run("print(secret * 2)"),
        tools=[auto()],
        include=[OUTPUTS],
    )
    two_turns_s = time.perf_counter() - started
    seen: dict[str, Any] = {
        "two_turns_s": two_turns_s,
        "conversation_echo": first.conversation.id if first.conversation else None,
        "first_logs": [logs(c) for c in calls(first)],
        "second_logs": [logs(c) for c in calls(second)],
        "containers": [calls(first)[0].container_id, calls(second)[0].container_id],
        "second_text": second.output_text,
    }
    other = client.conversations.create()
    stranger = client.responses.create(
        model=MODEL,
        conversation={"id": other.id},
        input=run("print(secret)"),
        tools=[auto()],
        include=[OUTPUTS],
    )
    seen["other_logs"] = [logs(c) for c in calls(stranger)]
    seen["other_container"] = calls(stranger)[0].container_id
    # Paging: the SDK follows last_id page by page.
    page = client.conversations.items.list(conversation.id, limit=2, order="asc")
    seen["first_page"] = {"count": len(page.data), "has_more": page.has_more}
    items = list(client.conversations.items.list(conversation.id, limit=2, order="asc"))
    seen["items"] = [{"type": i.type, "role": getattr(i, "role", None), "id": i.id} for i in items]
    with_outputs = client.conversations.items.list(conversation.id, order="asc", include=[OUTPUTS])
    seen["item_outputs"] = [
        [logs(i), _plain(i).get("container_id")] for i in with_outputs if i.type == "code_interpreter_call"
    ]
    seen["item_outputs_hidden"] = [
        i.outputs
        for i in client.conversations.items.list(conversation.id)
        if i.type == "code_interpreter_call"
    ]
    newest = list(client.conversations.items.list(conversation.id, limit=100))
    seen["items_desc_ids"] = [i.id for i in newest]
    one = client.conversations.items.retrieve(items[0].id, conversation_id=conversation.id)
    seen["retrieved_item"] = {"id": one.id, "type": one.type}
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "a note"}]
    )
    seen["added_count"] = len(added.data)
    after = client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    seen["delete_item_returns"] = after.object
    updated = client.conversations.update(conversation.id, metadata={"suite": "changed"})
    seen["metadata"] = client.conversations.retrieve(conversation.id).metadata
    seen["updated_object"] = updated.object
    deleted = client.conversations.delete(other.id)
    seen["deleted"] = {"object": deleted.object, "deleted": deleted.deleted}
    seen["after_delete"] = status_of(lambda: client.conversations.retrieve(other.id))
    return seen


def section_containers(client: OpenAI, csv_path: str) -> dict[str, Any]:
    container = client.containers.create(
        name="flow-container", expires_after={"anchor": "last_active_at", "minutes": 20}
    )
    seen: dict[str, Any] = {
        "created": {
            "object": container.object,
            "name": container.name,
            "status": container.status,
            "expires_after": container.expires_after.model_dump(mode="json")
            if container.expires_after
            else None,
        }
    }
    spare = client.containers.create(name="flow-spare")
    listed = list(client.containers.list(limit=1))
    seen["listed"] = container.id in [c.id for c in listed] and spare.id in [c.id for c in listed]
    seen["retrieved_name"] = client.containers.retrieve(container.id).name
    with open(csv_path, "rb") as handle:
        original = handle.read()
    uploaded = client.containers.files.create(container.id, file=("upload.csv", original))
    with open(csv_path, "rb") as handle:
        stored = client.files.create(file=handle, purpose="assistants")
    copied = client.containers.files.create(container.id, file_id=stored.id)
    seen["uploaded"] = {"path": uploaded.path, "source": uploaded.source, "object": uploaded.object}
    seen["copied"] = {"path": copied.path, "source": copied.source, "bytes": copied.bytes}
    seen["content_equal"] = (
        client.containers.files.content.retrieve(uploaded.id, container_id=container.id).read() == original
    )
    seen["file_ids"] = sorted(f.id for f in client.containers.files.list(container.id))
    seen["expected_ids"] = sorted([uploaded.id, copied.id])
    seen["uploaded_id"] = uploaded.id
    # Code runs in the explicit container and sees the uploaded file.
    response = client.responses.create(
        model=MODEL,
        input=run("import os\nprint(sorted(os.listdir('.')))"),
        tools=[{"type": "code_interpreter", "container": container.id}],
        include=[OUTPUTS],
    )
    call = calls(response)[0]
    seen["explicit_container_id"] = call.container_id
    seen["explicit_logs"] = logs(call)
    client.containers.files.delete(copied.id, container_id=container.id)
    seen["after_file_delete"] = sorted(f.id for f in client.containers.files.list(container.id))
    client.containers.delete(spare.id)
    client.containers.delete(container.id)
    seen["after_delete"] = status_of(lambda: client.containers.retrieve(container.id))
    return seen


def _poll(client: OpenAI, response_id: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.responses.retrieve(response_id, include=[OUTPUTS])
        if response.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def section_background(client: OpenAI, csv_path: str) -> dict[str, Any]:
    queued = client.responses.create(
        model=MODEL, input=run("print(7 * 6)"), tools=[auto()], include=[OUTPUTS], background=True
    )
    seen: dict[str, Any] = {"initial_status": queued.status, "background": queued.background}
    done = _poll(client, queued.id)
    seen["final_status"] = done.status
    seen["final_logs"] = [logs(c) for c in calls(done)]
    seen["final_text"] = done.output_text
    slow = client.responses.create(
        model=MODEL,
        input=run("import time\ntime.sleep(15)\nprint('too late')"),
        tools=[auto()],
        background=True,
    )
    time.sleep(1.5)
    cancelled = client.responses.cancel(slow.id)
    seen["cancel_returns"] = cancelled.status
    later = _poll(client, slow.id, timeout_s=30)
    seen["cancelled_status"] = later.status
    time.sleep(0.5)
    seen["cancelled_stays"] = client.responses.retrieve(slow.id).status
    return seen


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
}


def section_function(client: OpenAI, csv_path: str) -> dict[str, Any]:
    """A client function beside the code tool: its arguments stream, its output continues the response."""
    events = list(
        client.responses.create(
            model=MODEL, input="CALL<<get_weather>>CALL", tools=[auto(), WEATHER], stream=True
        )
    )
    final = events[-1].response
    call = final.output[0]
    indexes = {e.output_index for e in events if hasattr(e, "output_index")}
    with client.responses.stream(model=MODEL, input="CALL<<get_weather>>CALL", tools=[WEATHER]) as managed:
        for _ in managed:
            pass
        helper = managed.get_final_response()
    continued = client.responses.create(
        model=MODEL,
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[auto(), WEATHER],
    )
    return {
        "types": [e.type for e in events],
        "indexes": sorted(indexes),
        "argument_deltas": [
            "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        ],
        "arguments_done": [e.arguments for e in events if e.type == "response.function_call_arguments.done"],
        "call": {
            "type": call.type,
            "name": call.name,
            "status": call.status,
            "arguments": call.arguments,
            "call_id": call.call_id,
        },
        "helper_call": helper.output[0].name,
        "helper_parsed_arguments": helper.output[0].arguments,
        "continued_text": continued.output_text,
    }


def section_failure(client: OpenAI, csv_path: str) -> dict[str, Any]:
    """The model endpoint breaks (the scripted model fails on MODEL-FAILS): a failed response."""
    failed = client.responses.create(model=MODEL, input="MODEL-FAILS", tools=[auto()])
    events = list(client.responses.create(model=MODEL, input="MODEL-FAILS", tools=[auto()], stream=True))
    last = events[-1]
    return {
        "status": failed.status,
        "error": failed.error.model_dump(mode="json") if failed.error else None,
        "retrieved_status": client.responses.retrieve(failed.id).status,
        "stream_types": [e.type for e in events],
        "stream_status": last.response.status if hasattr(last, "response") else None,
        "stream_error": last.response.error.model_dump(mode="json")
        if hasattr(last, "response") and last.response.error
        else None,
    }


SECTIONS: dict[str, Callable[[OpenAI, str], dict[str, Any]]] = {
    "code": section_code,
    "stream": section_stream,
    "replay": section_replay,
    "replayed": section_replayed,
    "files": section_files,
    "conversation": section_conversation,
    "containers": section_containers,
    "background": section_background,
    "failure": section_failure,
    "function": section_function,
}


def main(base_url: str, api_key: str, csv_path: str, sections: str) -> None:
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
    seen: dict[str, Any] = {"sdk": openai.__version__}
    for name in sections.split(","):
        try:
            seen[name] = SECTIONS[name](client, csv_path)
        except Exception as error:
            seen[name] = {
                "failed": f"{type(error).__name__}: {error}",
                "trace": traceback.format_exc()[-3000:],
            }
    print(json.dumps(seen, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:5])
