"""Vector stores as the code interpreter's resources (the seed's C# sample,
CodeInterpreterToolResource.VectorStoreIds): the store's files are in /mnt/data, and the code reads
them. A CSV is not a file_search document, so its text is not indexed, yet the file is there."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.integration.test_seed_scenario import expected_total
from tests.scripted_model import Code, Messages, ScriptedModel, Text, last_tool_output

SUM = """
import pandas as pd
df = pd.read_csv('/mnt/data/synthetic_500_quarterly_results.csv')
print(f"TOTAL={round(df[df['sector'] == 'TRANSPORTATION']['operating_profit'].sum(), 1)}")
"""


def answer(messages: Messages) -> Text:
    return Text(f"The total is {last_tool_output(messages).split('TOTAL=')[1].split()[0]}.")


def test_store_files_reach_the_code(
    client: openai.OpenAI, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    with quarterly_csv.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="assistants")
    store = client.vector_stores.create(name="quarterly", file_ids=[uploaded.id])
    assistant = client.beta.assistants.create(
        model="scripted",
        instructions="Analyse the data with code.",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"vector_store_ids": [store.id]}},  # type: ignore[arg-type]
    )
    assert assistant.tool_resources is not None and assistant.tool_resources.code_interpreter is not None
    assert assistant.tool_resources.code_interpreter.model_extra == {"vector_store_ids": [store.id]}
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Sum TRANSPORTATION's operating profit."}]
    )
    scripted_model.script(Code(SUM), answer)

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )

    assert run.status == "completed", run.last_error
    total = expected_total(quarterly_csv)
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="desc")
    reply = messages.data[0].content[0]
    assert reply.type == "text" and reply.text.value == f"The total is {total}."
    system = scripted_model.requests[0]["messages"][0]["content"]
    assert "synthetic_500_quarterly_results.csv" in system  # the model is told the file is there


def test_unknown_store_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.assistants.create(
            model="scripted",
            tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"vector_store_ids": ["vs_missing"]}},  # type: ignore[arg-type]
        )
    assert "vs_missing" in caught.value.message
    assert caught.value.body["param"] == "tool_resources.code_interpreter.vector_store_ids"  # type: ignore[index]
