"""The seed's scenario end to end: openai SDK → agentbox → real sandbox → chart and file back."""

from __future__ import annotations

import csv
from pathlib import Path

import openai
import pytest

from tests.scripted_model import Code, Messages, ScriptedModel, Text, last_tool_output

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROMPT = (
    "Could you please create bar chart in the TRANSPORTATION sector for the operating profit from the "
    "uploaded csv file and provide file to me?"
)

# The model's first attempt uses a wrong column name, as real models do; the traceback must reach
# it so the second attempt can succeed.
WRONG_COLUMN = """
import pandas as pd
df = pd.read_csv('/mnt/data/synthetic_500_quarterly_results.csv')
df[df['Sector'] == 'TRANSPORTATION']
"""
CHART = """
import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv('/mnt/data/synthetic_500_quarterly_results.csv')
transport = df[df['sector'] == 'TRANSPORTATION']
total = round(transport['operating_profit'].sum(), 1)
print(f"TOTAL={total}")
ax = transport.plot.bar(x='name', y='operating_profit', figsize=(10, 5), legend=False)
ax.set_title('Operating profit, TRANSPORTATION')
plt.tight_layout()
plt.savefig('/mnt/data/transportation_operating_profit.png')
plt.show()
"""


def expected_total(csv_path: Path) -> float:
    with csv_path.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["sector"] == "TRANSPORTATION"]
    return round(sum(float(r["operating_profit"]) for r in rows), 1)


def answer_with_total(messages: Messages) -> Text:
    printed = last_tool_output(messages)
    total = printed.split("TOTAL=")[1].split()[0]
    return Text(
        f"The TRANSPORTATION sector's operating profit totals {total}. "
        "[Download the bar chart](sandbox:/mnt/data/transportation_operating_profit.png)"
    )


@pytest.mark.cgroup_v2
def test_seed_scenario(client: openai.OpenAI, scripted_model: ScriptedModel, quarterly_csv: Path) -> None:
    with quarterly_csv.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    assert uploaded.filename == "synthetic_500_quarterly_results.csv"
    assert uploaded.bytes == quarterly_csv.stat().st_size

    assistant = client.beta.assistants.create(
        model="gpt-4o-mini",
        instructions="You are a helpful agent that analyses data with code.",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}},
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content=PROMPT)
    scripted_model.script(Code(WRONG_COLUMN), Code(CHART), answer_with_total)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )

    assert run.status == "completed", run.last_error
    assert run.usage is not None and run.usage.total_tokens > 0
    total = expected_total(quarterly_csv)

    # The model saw the system prompt naming the file, and the traceback of its first try.
    first_request = scripted_model.requests[0]
    assert "/mnt/data/synthetic_500_quarterly_results.csv" in first_request["messages"][0]["content"]
    assert "KeyError" in last_tool_output(scripted_model.requests[1]["messages"])

    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    failing, charting = (s.step_details.tool_calls[0] for s in steps[:2])  # type: ignore[union-attr]
    assert failing.code_interpreter.input == WRONG_COLUMN
    assert "KeyError: 'Sector'" in failing.code_interpreter.outputs[0].logs
    logs, image = charting.code_interpreter.outputs
    assert logs.type == "logs" and f"TOTAL={total}" in logs.logs
    assert image.type == "image"
    chart = client.files.content(image.image.file_id).read()
    assert chart.startswith(PNG_MAGIC) and len(chart) > 5_000
    assert client.files.retrieve(image.image.file_id).purpose == "assistants_output"

    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]  # default order: newest first
    assert answer.role == "assistant" and answer.run_id == run.id
    assert steps[2].step_details.message_creation.message_id == answer.id  # type: ignore[union-attr]
    image_part, text_part = answer.content
    assert image_part.type == "image_file" and image_part.image_file.file_id == image.image.file_id
    assert text_part.type == "text" and f"totals {total}" in text_part.text.value
    (link,) = text_part.text.annotations
    assert link.type == "file_path"
    value = text_part.text.value
    assert (
        value[link.start_index : link.end_index]
        == link.text
        == "sandbox:/mnt/data/transportation_operating_profit.png"
    )
    saved = client.files.content(link.file_path.file_id).read()
    assert saved.startswith(PNG_MAGIC) and len(saved) > 5_000
    saved_file = client.files.retrieve(link.file_path.file_id)
    assert saved_file.purpose == "assistants_output"
    assert saved_file.filename == "transportation_operating_profit.png"

    # Variables persist in the thread's session between runs …
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="And the total again?")
    scripted_model.script(Code("print(f'AGAIN={total}')"), lambda m: Text(last_tool_output(m)))
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed", again.last_error
    assert (
        f"AGAIN={total}"
        in client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value
    )  # type: ignore[union-attr]

    # … and another thread has its own session: neither the variable nor the chart.
    other = client.beta.threads.create(messages=[{"role": "user", "content": "Look around."}])
    scripted_model.script(
        Code("import os\nprint('total' in globals(), sorted(os.listdir('/mnt/data')))"),
        lambda m: Text(last_tool_output(m)),
    )
    isolated = client.beta.threads.runs.create_and_poll(
        thread_id=other.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert isolated.status == "completed", isolated.last_error
    seen = client.beta.threads.messages.list(thread_id=other.id).data[0].content[0].text.value  # type: ignore[union-attr]
    assert seen.strip() == "False ['synthetic_500_quarterly_results.csv']"


def test_message_attachments_reach_the_sandbox(
    client: openai.OpenAI, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    with quarterly_csv.open("rb") as handle:
        uploaded = client.files.create(file=("results.csv", handle), purpose="assistants")
    assistant = client.beta.assistants.create(model="gpt-4o-mini", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="How many rows?",
        attachments=[{"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}],
    )
    scripted_model.script(
        Code("import pandas as pd\nlen(pd.read_csv('/mnt/data/results.csv'))"),
        lambda m: Text(last_tool_output(m)),
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    assert "- /mnt/data/results.csv" in scripted_model.requests[0]["messages"][0]["content"]
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.value.strip() == "500"  # type: ignore[union-attr]
