"""What every benchmarked run must show: `completed`, the code step with its output, the answer.

The scripted model answers from the conversation, not from a queue, so runs in flight at the same
time each get their own answers: the newest user message carries the code between `RUN<<` and `>>`,
the model asks the code tool to run it, then answers `result: <the tool's output>`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from tests.scripted_model import Answer, Code, Messages, ScriptedModel, Text, last_tool_output

_CODE = re.compile(r"RUN<<(.*?)>>", re.S)


def ask(code: str) -> str:
    """A user message whose run must execute `code`."""
    return f"Please run RUN<<{code}>>"


def echo_reply(messages: Messages) -> Answer:
    if messages[-1].get("role") == "tool":
        return Text(f"result: {last_tool_output(messages).strip()}")
    for message in reversed(messages):
        if message.get("role") == "user":
            found = _CODE.search(json.dumps(message.get("content")))
            return Code(json.loads(f'"{found.group(1)}"') if found else "pass")
    return Code("pass")


def serve_echo(model: ScriptedModel, requests: int) -> None:
    """Queue the conversation-driven reply for this many model requests (two per run)."""
    model.script(*[echo_reply] * requests)


@dataclass(frozen=True)
class Expected:
    """One run to check: where it is, the code it ran (None: no code step) and what that code
    prints, and the answer (default: `result: <output>`, what echo_reply says)."""

    thread_id: str
    run_id: str
    code: str | None
    output: str = ""
    answer: str | None = None


def stream_run(body: bytes) -> dict[str, Any]:
    """The run object of a streamed run's `thread.run.completed` event; raises if the stream ended
    otherwise (`[DONE]` alone proves nothing: a failed run sends it too)."""
    event = ""
    for line in body.decode().splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in ("thread.run.completed", "thread.run.failed", "error"):
            data: dict[str, Any] = json.loads(line[6:])
            if event == "thread.run.completed":
                return data
            raise RuntimeError(f"{event}: {data.get('last_error') or data}")
    raise RuntimeError(f"the stream ended without thread.run.completed: {body[-300:]!r}")


async def check_run(client: httpx.AsyncClient, want: Expected) -> None:
    """The run is completed; its steps are one code_interpreter call of `want.code` whose logs are
    `want.output` (none when code is None), then the message with the answer."""
    base = f"/threads/{want.thread_id}/runs/{want.run_id}"
    run = (await client.get(base)).raise_for_status().json()
    if run["status"] != "completed":
        raise RuntimeError(f"run {want.run_id} is {run['status']}: {run.get('last_error')}")
    steps = (await client.get(f"{base}/steps", params={"order": "asc"})).raise_for_status().json()["data"]
    kinds = [s["type"] for s in steps]
    if kinds != (["message_creation"] if want.code is None else ["tool_calls", "message_creation"]):
        raise RuntimeError(f"run {want.run_id} has steps {kinds}")
    if want.code is not None:
        call = steps[0]["step_details"]["tool_calls"][0]
        if call["type"] != "code_interpreter" or call["code_interpreter"]["input"] != want.code:
            raise RuntimeError(f"run {want.run_id} ran {call}")
        logs = "".join(o.get("logs", "") for o in call["code_interpreter"]["outputs"])
        if logs.strip() != want.output:
            raise RuntimeError(f"run {want.run_id} printed {logs!r}, not {want.output!r}")
    message_id = steps[-1]["step_details"]["message_creation"]["message_id"]
    message = (await client.get(f"/threads/{want.thread_id}/messages/{message_id}")).raise_for_status().json()
    text = message["content"][0]["text"]["value"]
    if text != (f"result: {want.output}" if want.answer is None else want.answer):
        raise RuntimeError(f"run {want.run_id} answered {text!r}")


async def check_runs(base_url: str, headers: dict[str, str], runs: list[Expected]) -> list[BaseException]:
    """check_run for every run, 16 at a time; what failed."""
    failed: list[BaseException] = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        gate = asyncio.Semaphore(16)

        async def one(want: Expected) -> None:
            async with gate:
                try:
                    await check_run(client, want)
                except Exception as exc:
                    failed.append(exc)

        await asyncio.gather(*(one(w) for w in runs))
    return failed


def check_all(base_url: str, headers: dict[str, str], runs: list[Expected]) -> None:
    """Raise if any run is not what it should be (the bench then fails)."""
    failed = asyncio.run(check_runs(base_url, headers, runs))
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(runs)} benchmarked runs are wrong: {failed[:3]!r}")
