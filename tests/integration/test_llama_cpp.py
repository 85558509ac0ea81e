"""agentbox against a real OpenAI-compatible server: llama.cpp through llama-cpp-python 0.3.36's
server (tests/llama_server.py), serving SmolLM2-135M-Instruct with the chatml-function-calling chat
format, the code tool forced by tool_choice (without one, this server does not show the model the
tools at all).

A 135M model writes poor code, so these tests assert the protocol and the real execution, not the
model's wisdom: the step's code is what the server streamed (read from the raw chunks), the step's
logs are what that code prints when run here in a plain Python (a wrong program's traceback is as
real as a right one's output), the output went back to the model in the next request, and the run
ends with the text the server streamed. Greedy decoding (temperature 0) and a fixed seed make the
model's answers the same on every run; the user's words are chosen so that one answer prints a
number and the other fails to parse.

How this server's stream differs from OpenAI's, as the recorder saw it (assert_the_servers_ways):
every tool-call chunk repeats the call's id (call__0_python_cmpl-…) and index 0 and also carries
the legacy `function_call` delta with the same arguments; the arguments come a token at a time;
the turn ends with a chunk of finish_reason "tool_calls" (even when max_tokens cut the arguments
short); no usage chunk is sent, though agentbox asks for one; SSE comment lines (`: ping`) may
come first. It also refuses an assistant message whose content is null (an HTTP 500 listing
pydantic errors), and it answers a turn without tool_choice with plain text, ignoring the tools and
leaving the tool messages out of the prompt: the model's last answer never saw the output, so the
tests check that agentbox sent it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.llama_server import MODEL_ALIAS, Exchange, LlamaServer
from tests.run_events import Recorder
from tests.sandbox_fixtures import cell_seconds

pytestmark = pytest.mark.slow

PRINTS = "Use Python to print the square of 12."  # the model's code prints a number (12 ** 4)
# The server's prompt template HTML-escapes the user's quotes (&#39;) and the model copies them into
# its code: a SyntaxError, whose real traceback is the output.
FAILS = "Run print('hello')"
MAX_TOKENS = 300  # bounds each turn; the answers used here are well under it
CODE_TOOL: Any = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llama_agentbox(tmp_path_factory: pytest.TempPathFactory, llama: LlamaServer) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("agentbox-llama") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=llama.base_url,
        AGENTBOX_MODEL_API_KEY="unused",
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def sdk(llama_agentbox: LiveServer) -> Iterator[openai.OpenAI]:
    with llama_agentbox.sdk() as client:
        yield client


def streamed_call(exchange: Exchange) -> tuple[str, str]:
    """The id and the arguments of the one tool call the server streamed in this exchange."""
    ids, arguments = set(), []
    for chunk in exchange.chunks():
        for piece in chunk["choices"][0]["delta"].get("tool_calls") or []:
            ids.add(piece["id"])
            arguments.append(piece["function"]["arguments"])
    [call_id] = ids
    return call_id, "".join(arguments)


def streamed_code(exchange: Exchange) -> str:
    """The code the model sent: llama.cpp's JSON may hold raw newlines, hence strict=False."""
    code = json.loads(streamed_call(exchange)[1], strict=False)["code"]
    assert isinstance(code, str)
    return code


def streamed_text(exchange: Exchange) -> str:
    return "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in exchange.chunks())


# Runs a cell as the sandbox does (a notebook: a last bare expression's value is shown), in the
# Python running the tests, with nothing of agentbox.
CELL = textwrap.dedent(
    """
    import ast, sys
    tree = ast.parse(sys.stdin.read(), "<cell>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    scope = {"__name__": "__main__"}
    exec(compile(tree, "<cell>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
        if value is not None:
            print(repr(value))
    """
)


def assert_logs_are_what_the_code_prints(logs: str, code: str, tmp_path: Path) -> None:
    here = subprocess.run(
        [sys.executable, "-c", CELL], input=code, capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    if here.returncode == 0:
        assert logs == here.stdout, (code, here.stdout)
    else:  # the same error; the frames above it name our runner, not the sandbox's
        error = here.stderr.strip().splitlines()[-1]
        assert logs.strip().splitlines()[-1] == error, (code, here.stderr)
        assert code.splitlines()[0].strip() in logs  # the traceback quotes the offending line


def assert_output_went_back(exchange: Exchange, call_id: str, arguments: str, logs: str) -> None:
    """The next request carries the call as the server sent it, then its result."""
    *_, call, result = exchange.body["messages"]
    assert call["role"] == "assistant"
    assert call["tool_calls"] == [
        {"id": call_id, "type": "function", "function": {"name": "python", "arguments": arguments}}
    ]
    assert result["role"] == "tool" and result["tool_call_id"] == call_id
    assert logs.strip() in result["content"]


def two_turns(llama: LlamaServer, since: int) -> tuple[Exchange, Exchange]:
    first, second = llama.completions()[since:]
    assert first.status == second.status == 200 and first.done and second.done
    # The first turn forces the code tool; the second is free, so the run can end.
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert second.body.get("tool_choice") != first.body["tool_choice"]
    assert first.body["temperature"] == 0 and first.body["model"] == MODEL_ALIAS
    return first, second


def assert_the_servers_ways(first: Exchange, second: Exchange) -> None:
    """What llama.cpp's server really streams for a forced call, which agentbox must absorb."""
    chunks = first.chunks()
    pieces = [c["choices"][0]["delta"] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert len(pieces) > 3  # the arguments are split, a token a chunk
    assert {p["tool_calls"][0]["id"] for p in pieces} == {streamed_call(first)[0]}  # the id on every piece
    assert all(p["tool_calls"][0]["index"] == 0 for p in pieces)
    # ...and each piece again as a legacy function_call: read both and the code comes twice.
    assert all(p["function_call"]["arguments"] == p["tool_calls"][0]["function"]["arguments"] for p in pieces)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert first.body["stream_options"] == {"include_usage": True}
    assert not any(c.get("usage") for c in chunks + second.chunks())  # asked for, never sent
    assert [c["choices"][0]["finish_reason"] for c in second.chunks()][-1] == "stop"


def test_assistants_run_executes_the_models_code(
    sdk: openai.OpenAI, llama: LlamaServer, tmp_path: Path
) -> None:
    since = len(llama.completions())
    assistant = sdk.beta.assistants.create(
        model=MODEL_ALIAS, tools=[{"type": "code_interpreter"}], temperature=0
    )
    run = sdk.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": PRINTS}]},
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=MAX_TOKENS,
    )
    assert run.status == "completed", run.last_error
    first, second = two_turns(llama, since)
    assert_the_servers_ways(first, second)
    call_id, arguments = streamed_call(first)
    # agentbox counted the tokens the server did not report (estimated: see llm/chunks.py).
    assert run.usage is not None and run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0

    steps = sdk.beta.threads.runs.steps.list(thread_id=run.thread_id, run_id=run.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.type == "tool_calls"
    [call] = steps[0].step_details.tool_calls
    assert call.type == "code_interpreter" and call.id == call_id
    assert call.code_interpreter.input == streamed_code(first)
    [output] = call.code_interpreter.outputs
    assert output.type == "logs" and output.logs.strip()
    assert_logs_are_what_the_code_prints(output.logs, call.code_interpreter.input, tmp_path)
    assert_output_went_back(second, call_id, arguments, output.logs)

    [answer, _question] = sdk.beta.threads.messages.list(thread_id=run.thread_id).data
    assert answer.role == "assistant" and answer.run_id == run.id
    assert answer.content[0].type == "text"
    assert answer.content[0].text.value == streamed_text(second) != ""


def test_assistants_stream_shows_the_real_traceback(
    sdk: openai.OpenAI, llama: LlamaServer, tmp_path: Path
) -> None:
    since = len(llama.completions())
    assistant = sdk.beta.assistants.create(
        model=MODEL_ALIAS, tools=[{"type": "code_interpreter"}], temperature=0
    )
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": FAILS}])
    recorder = Recorder()
    with sdk.beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tool_choice={"type": "code_interpreter"},
        max_completion_tokens=MAX_TOKENS,
        event_handler=recorder,
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert final.status == "completed", final.last_error
    assert recorder.names[-1] == "thread.run.completed"
    first, second = two_turns(llama, since)
    call_id, arguments = streamed_call(first)
    code = streamed_code(first)
    assert "".join(recorder.code) == code
    assert recorder.names.count("thread.run.step.delta") > 3  # the code came as the model wrote it
    logs = "".join(recorder.logs)
    assert "Error" in logs  # this prompt's code does not parse: the traceback is the output
    assert_logs_are_what_the_code_prints(logs, code, tmp_path)
    assert_output_went_back(second, call_id, arguments, logs)
    assert "".join(recorder.text) == streamed_text(second) != ""


def test_responses_call_executes_the_models_code(
    sdk: openai.OpenAI, llama: LlamaServer, tmp_path: Path
) -> None:
    since = len(llama.completions())
    response = sdk.responses.create(
        model=MODEL_ALIAS,
        input=PRINTS,
        tools=[CODE_TOOL],
        tool_choice={"type": "code_interpreter"},
        temperature=0,
        max_output_tokens=MAX_TOKENS,
        include=["code_interpreter_call.outputs"],
    )
    assert response.status == "completed", response.error
    first, second = two_turns(llama, since)
    call_id, arguments = streamed_call(first)
    call, message = response.output
    assert call.type == "code_interpreter_call" and message.type == "message"
    assert call.code == streamed_code(first)
    assert call.outputs is not None
    [output] = call.outputs
    assert output.type == "logs" and output.logs.strip()
    assert_logs_are_what_the_code_prints(output.logs, call.code, tmp_path)
    assert_output_went_back(second, call_id, arguments, output.logs)
    assert response.output_text == streamed_text(second) != ""


def test_responses_stream_shows_the_real_traceback(
    sdk: openai.OpenAI, llama: LlamaServer, tmp_path: Path
) -> None:
    since = len(llama.completions())
    events = list(
        sdk.responses.create(
            model=MODEL_ALIAS,
            input=FAILS,
            tools=[CODE_TOOL],
            tool_choice={"type": "code_interpreter"},
            temperature=0,
            max_output_tokens=MAX_TOKENS,
            include=["code_interpreter_call.outputs"],
            stream=True,
        )
    )
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    first, second = two_turns(llama, since)
    call_id, arguments = streamed_call(first)
    code = streamed_code(first)
    code_deltas = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    assert code_deltas == code
    [done] = [
        e.item
        for e in events
        if e.type == "response.output_item.done" and e.item.type == "code_interpreter_call"
    ]
    assert done.type == "code_interpreter_call" and done.code == code and done.outputs is not None
    [output] = done.outputs
    assert output.type == "logs" and "Error" in output.logs
    assert_logs_are_what_the_code_prints(output.logs, code, tmp_path)
    assert_output_went_back(second, call_id, arguments, output.logs)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == streamed_text(second) != ""
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == text
