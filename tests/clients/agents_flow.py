"""Drives a live agentbox with the OpenAI Agents SDK (run in .clients/agents); prints what it saw as JSON.

An unmodified `Agent` with the hosted `CodeInterpreterTool`, its model an `OpenAIResponsesModel` over
an `AsyncOpenAI` pointed at agentbox, tracing off (nothing may reach api.openai.com). `Runner.run`,
a second turn chained by `previous_response_id`, and `Runner.run_streamed`.

argv: base_url api_key. The test scripts the model: RUN<<code>>RUN in the input runs that code, and
the tool's result comes back quoted in the answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any

import agents
from agents import (
    Agent,
    CodeInterpreterTool,
    ModelSettings,
    OpenAIResponsesModel,
    Runner,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI


def run(code: str) -> str:
    return f"Please run this. RUN<<{code}>>RUN"


def tool() -> CodeInterpreterTool:
    return CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}})


def code_calls(result: Any) -> list[Any]:
    return [
        item.raw_item
        for item in result.new_items
        if item.type == "tool_call_item" and getattr(item.raw_item, "type", None) == "code_interpreter_call"
    ]


def logs(call: Any) -> str | None:
    if call.outputs is None:
        return None
    return "".join(o.logs for o in call.outputs if o.type == "logs")


async def main(base_url: str, api_key: str) -> None:
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
    set_default_openai_client(client, use_for_tracing=False)
    model = OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client)
    agent = Agent(
        name="Analyst",
        instructions="You are a data analyst. Use the python tool.",
        model=model,
        tools=[tool()],
    )
    seen: dict[str, Any] = {"sdk": agents.__version__}

    async def section(name: str, body: Any) -> None:
        try:
            seen[name] = await body()
        except Exception as error:
            seen[name] = {
                "failed": f"{type(error).__name__}: {error}",
                "trace": traceback.format_exc()[-3000:],
            }

    async def plain() -> dict[str, Any]:
        started = time.perf_counter()
        result = await Runner.run(agent, run("answer = 6 * 7\nprint(answer)"))
        first_s = time.perf_counter() - started
        calls = code_calls(result)
        # Same agent, outputs included: the Agents SDK passes response_include through.
        verbose = agent.clone(
            model_settings=ModelSettings(response_include=["code_interpreter_call.outputs"])
        )
        chained = await Runner.run(
            verbose, run("print(answer + 1)"), previous_response_id=result.last_response_id
        )
        chained_calls = code_calls(chained)
        return {
            "final_output": result.final_output,
            "item_types": [item.type for item in result.new_items],
            "calls": [{"status": c.status, "container_id": c.container_id, "code": c.code} for c in calls],
            "outputs_without_include": [c.outputs for c in calls],
            "last_response_id": result.last_response_id,
            "chained_final_output": chained.final_output,
            "chained_logs": [logs(c) for c in chained_calls],
            "chained_containers": [c.container_id for c in chained_calls],
            "first_run_s": first_s,
        }

    async def replayed() -> dict[str, Any]:
        # The Agents SDK's own multi-turn idiom: the last run's items as the next run's input.
        first = await Runner.run(agent, run("carried = 20\nprint(carried)"))
        verbose = agent.clone(
            model_settings=ModelSettings(response_include=["code_interpreter_call.outputs"])
        )
        follow = [*first.to_input_list(), {"role": "user", "content": run("print(carried + 1)")}]
        second = await Runner.run(verbose, follow)
        return {
            "logs": [logs(c) for c in code_calls(second)],
            "containers": [c.container_id for c in code_calls(first) + code_calls(second)],
            "final_output": second.final_output,
        }

    async def conversation() -> dict[str, Any]:
        # Server-side state through a conversation: the SDK sends conversation=… and only new input.
        conv = await client.conversations.create()
        first = await Runner.run(agent, run("kept = 'still here'\nprint(kept)"), conversation_id=conv.id)
        second = await Runner.run(agent, run("print(kept.upper())"), conversation_id=conv.id)
        items = [item async for item in client.conversations.items.list(conv.id, order="asc")]
        return {
            "first": first.final_output,
            "second": second.final_output,
            "containers": [c.container_id for c in code_calls(first) + code_calls(second)],
            "item_types": [item.type for item in items],
        }

    async def streamed() -> dict[str, Any]:
        # This agent names its model by string: the SDK's default provider over the default client.
        by_name = agent.clone(model="gpt-4o-mini")
        started = time.perf_counter()
        result = Runner.run_streamed(by_name, input=run("print(sum(range(10)))"))
        kinds: list[str] = []
        raw: list[str] = []
        item_events: list[str] = []
        first_event_s = None
        async for event in result.stream_events():
            if first_event_s is None and event.type == "raw_response_event":  # the first from agentbox
                first_event_s = time.perf_counter() - started
            kinds.append(event.type)
            if event.type == "raw_response_event":
                raw.append(event.data.type)
            elif event.type == "run_item_stream_event":
                item_events.append(event.name)
        return {
            "final_output": result.final_output,
            "is_complete": result.is_complete,
            "kinds": sorted(set(kinds)),
            "raw_types": raw,
            "item_events": item_events,
            "calls": [{"status": c.status, "container_id": c.container_id} for c in code_calls(result)],
            "first_event_s": first_event_s,
        }

    await section("run", plain)
    await section("replayed", replayed)
    await section("conversation", conversation)
    await section("streamed", streamed)
    await client.close()
    print(json.dumps(seen, default=str))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
