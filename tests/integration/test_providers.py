"""Providers for real: several at once from a models file, Azure's URL forms and credentials, and
what a run reports when a provider fails.

Two kinds of tests. The provider client alone (ProviderClient against the scripted model, a real
HTTP server) pins the retry and failure rules with timings. A live agentbox with a models file
shows what users see: the request each provider received (path, query, headers, body), the run's
status and last_error, GET /v1/models. Azure is the scripted model behind a gate that answers only
Azure's shapes; its Entra tokens come from a second agentbox's managed-identity route.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from agentbox.errors import ContextTooLong, ModelError
from agentbox.llm.base import ChatRequest, Completion, ModelEvent, TextDelta
from agentbox.llm.catalog import ModelConfig, ModelOptions, Provider
from agentbox.llm.openai_compatible import ProviderClient
from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import (
    Chunks,
    Code,
    Cut,
    Fail,
    Received,
    ScriptedModel,
    Slow,
    Text,
    last_tool_output,
)

API_VERSION = "2024-10-21"
AZURE_KEY = "azure-key"
PLAIN_KEY = "sk-plain"
IDENTITY_HEADER = "providers-identity-header"
CODE_TOOL = {"type": "code_interpreter", "container": {"type": "auto"}}

# -- the provider client alone ------------------------------------------------------------------


def turn(model: ScriptedModel, **options: Any) -> tuple[list[ModelEvent], ModelError | None, float]:
    """One model turn through a fresh client: its events, the error it ended with, the seconds it took."""
    provider = Provider("scripted", model.base_url)
    config = ModelConfig("m", provider, ModelOptions(**options))
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    events: list[ModelEvent] = []

    async def go() -> ModelError | None:
        client = ProviderClient(provider, default_timeout_s=10)
        try:
            async for event in client.stream(request, config):
                events.append(event)
        except ModelError as exc:
            return exc
        finally:
            await client.aclose()
        return None

    started = time.monotonic()
    error = asyncio.run(go())
    return events, error, time.monotonic() - started


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_429_and_5xx_are_retried_with_backoff_honouring_retry_after(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Fail(429, "slow down", headers={"Retry-After": "1"}), Fail(503, "busy"), Text("ok"))
    events, error, took = turn(scripted_model)
    assert error is None and text_of(events) == "ok"
    assert len(scripted_model.received) == 3
    # 1 s asked by Retry-After, then the backoff's second step (0.5 s doubling: 1 s).
    assert 2.0 <= took < 4.0


def test_retry_after_as_an_http_date(scripted_model: ScriptedModel) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    scripted_model.script(Fail(429, "slow down", headers={"Retry-After": when}), Text("ok"))
    events, error, took = turn(scripted_model)
    assert error is None and text_of(events) == "ok"
    assert 0.9 <= took < 3.5  # the date has whole seconds: 1 to 2 s from now


def test_after_the_last_try_the_error_names_the_providers_answer(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Fail(500, "upstream overloaded"), Fail(502, "bad gateway upstream"))
    _, error, took = turn(scripted_model, max_retries=1)
    assert error is not None and error.code == "server_error"
    assert error.message == (
        "The model provider 'scripted' answered 502 Bad Gateway: bad gateway upstream (after 2 tries)"
    )
    assert len(scripted_model.received) == 2 and 0.5 <= took < 2

    scripted_model.script(Fail(429, "Rate limit reached for requests"))
    _, error, _ = turn(scripted_model, max_retries=0)
    assert error is not None and error.code == "rate_limit_exceeded"
    assert (
        error.message
        == "The model provider 'scripted' answered 429 Too Many Requests: Rate limit reached for requests"
    )


def test_a_retry_after_past_the_cap_fails_at_once(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Fail(429, "quota exhausted", headers={"Retry-After": "120"}), Text("never"))
    _, error, took = turn(scripted_model)
    assert error is not None and error.code == "rate_limit_exceeded"
    assert error.message.endswith("It asked to be retried after 120 s, longer than agentbox waits (60 s).")
    assert len(scripted_model.received) == 1 and took < 1


@pytest.mark.parametrize(
    "refusal",
    [
        Fail(400, "This model's maximum context length is 128000 tokens.", code="context_length_exceeded"),
        # vLLM
        Fail(400, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens"),
        # llama.cpp's server and llama-cpp-python's
        Fail(400, "the request exceeds the available context size, try increasing it"),
        Fail(400, "Requested tokens (5000) exceed context window of 2048"),
        # Ollama's own error shape
        Fail(400, body='{"error": "input length exceeds the context length"}'),
    ],
)
def test_context_length_refusals_raise_context_too_long(scripted_model: ScriptedModel, refusal: Fail) -> None:
    scripted_model.script(refusal, Text("never"))
    _, error, _ = turn(scripted_model)
    assert isinstance(error, ContextTooLong) and error.code == "context_length_exceeded"
    assert len(scripted_model.received) == 1  # not retried here: the engine truncates first


def test_other_4xx_fail_at_once_with_the_providers_message(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Fail(400, "Unsupported parameter: 'max_tokens'", code="unsupported_parameter"))
    _, error, _ = turn(scripted_model)
    assert error is not None and not isinstance(error, ContextTooLong)
    assert error.message == (
        "The model provider 'scripted' answered 400 Bad Request: Unsupported parameter: 'max_tokens'"
    )
    assert len(scripted_model.received) == 1


def test_a_silent_provider_times_out_without_retrying(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Slow(3, Text("late")))
    _, error, took = turn(scripted_model, timeout_s=0.5)
    assert error is not None and error.code == "server_error"
    assert error.message == "The model endpoint did not answer within 0.5 s (provider 'scripted', model 'm')."
    assert len(scripted_model.received) == 1 and took < 2


def test_a_stream_cut_mid_answer_fails_naming_what_came(scripted_model: ScriptedModel) -> None:
    scripted_model.script(Cut("The answer is forty"))
    events, error, _ = turn(scripted_model)
    assert text_of(events) == "The answer is forty"  # what came was streamed; no Completion
    assert not any(isinstance(e, Completion) for e in events)
    assert error is not None and error.code == "server_error"
    assert error.message == (
        "The model's answer was cut off: the stream ended without a finish_reason after 19 characters "
        "of text and 0 tool call(s) from provider 'scripted'."
    )
    assert len(scripted_model.received) == 1  # text was already streamed: never retried


def test_an_unreachable_provider_is_retried_then_named(tmp_path: Path) -> None:
    closed = ScriptedModel().start()
    url = closed.base_url
    closed.stop()
    provider = Provider("gone", url)
    config = ModelConfig("m", provider, ModelOptions(max_retries=1))

    async def go() -> None:
        client = ProviderClient(provider, default_timeout_s=5)
        try:
            async for _ in client.stream(ChatRequest(model="m", messages=[]), config):
                pass
        finally:
            await client.aclose()

    with pytest.raises(ModelError, match=rf"The model provider 'gone' could not be reached at {url}/chat/"):
        asyncio.run(go())


# -- a live agentbox with a models file -----------------------------------------------------------


def plain_gate(received: Received) -> tuple[int, str] | None:
    if received.headers.get("authorization") != f"Bearer {PLAIN_KEY}":
        return 401, "Incorrect API key provided."
    return None


def azure_gate(token_server: LiveServer) -> Any:
    """What Azure OpenAI accepts: its two URL forms, api-version on the classic one, an api-key
    header or an Entra token (checked against the agentbox that issued it)."""

    def gate(received: Received) -> tuple[int, str] | None:
        if re.fullmatch(r"/openai/deployments/[^/]+/chat/completions", received.path):
            if received.query.get("api-version") != API_VERSION:
                return 404, "Resource not found"  # what Azure says to a missing or unknown api-version
        elif received.path != "/openai/v1/chat/completions":
            return 404, "Resource not found"
        if received.headers.get("api-key") == AZURE_KEY:
            return None
        bearer = received.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and _valid_token(token_server, bearer):
            return None
        return 401, "Access denied due to invalid subscription key or wrong API endpoint."

    return gate


def _valid_token(token_server: LiveServer, bearer: str) -> bool:
    answer = httpx.get(
        f"{token_server.base_url}/models",
        headers={"Authorization": bearer},
        verify=token_server.tls_context(),
        timeout=10,
    )
    return answer.status_code == 200


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An agentbox whose /msi/token route plays Azure's managed identity for the providers' server."""
    server = LiveServer(
        tmp_path_factory.mktemp("tokens") / "data",
        API_KEY,
        args=["--tls-self-signed"],
        AGENTBOX_IDENTITY_HEADER=IDENTITY_HEADER,
        AGENTBOX_POOL_SIZE="0",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain() -> Iterator[ScriptedModel]:
    model = ScriptedModel(plain_gate).start()
    yield model
    model.stop()


@pytest.fixture(scope="module")
def azure(token_server: LiveServer) -> Iterator[ScriptedModel]:
    model = ScriptedModel(azure_gate(token_server)).start()
    yield model
    model.stop()


def models_file(plain: ScriptedModel, azure: ScriptedModel) -> str:
    azure_root = azure.base_url.removesuffix("/v1")
    return f"""
[providers.plain]
base_url = "{plain.base_url}"
api_key = "{PLAIN_KEY}"

[providers.azure-classic]
kind = "azure"
base_url = "{azure_root}"
api_version = "{API_VERSION}"
api_key = "{AZURE_KEY}"

[providers.azure-v1]
kind = "azure"
base_url = "{azure_root}/openai/v1"
api_key_env = "TEST_AZURE_OPENAI_KEY"

[providers.azure-entra]
kind = "azure"
base_url = "{azure_root}"
api_version = "{API_VERSION}"
auth = "entra"

[[models]]
match = "gpt-4o-mini"
provider = "azure-classic"

[[models]]
match = "v1-deployment"
provider = "azure-v1"

[[models]]
match = "entra-deployment"
provider = "azure-entra"

[[models]]
match = "o3*"
provider = "plain"
reasoning = true
temperature = false
reasoning_effort = "low"

[[models]]
match = "alias"
provider = "plain"
upstream = "the-real-name"
vision = true
context_window = 8192

[[models]]
match = "flaky-*"
provider = "plain"
max_retries = 1
timeout_s = 1
"""


@pytest.fixture(scope="module")
def providers_server(
    tmp_path_factory: pytest.TempPathFactory,
    token_server: LiveServer,
    plain: ScriptedModel,
    azure: ScriptedModel,
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("providers")
    (root / "models.toml").write_text(models_file(plain, azure))
    server = LiveServer(
        root / "data",
        API_KEY,
        AGENTBOX_MODELS_FILE=str(root / "models.toml"),
        AGENTBOX_EXEC_TIMEOUT_S="20",
        TEST_AZURE_OPENAI_KEY=AZURE_KEY,
        # DefaultAzureCredential's managed-identity path, to the token server and no further.
        IDENTITY_ENDPOINT=f"{token_server.url}/msi/token",
        IDENTITY_HEADER=IDENTITY_HEADER,
        REQUESTS_CA_BUNDLE=str(token_server.tls_cert),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def sdk(providers_server: LiveServer, plain: ScriptedModel, azure: ScriptedModel) -> Iterator[openai.OpenAI]:
    plain.reset()
    azure.reset()
    with providers_server.sdk() as client:
        yield client


def run(client: openai.OpenAI, model: str, **options: Any) -> Any:
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "what is 6 * 7?"}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, **options
    )


def logs_of(client: openai.OpenAI, run_: Any) -> list[str]:
    steps = client.beta.threads.runs.steps.list(run_id=run_.id, thread_id=run_.thread_id, order="asc")
    return [
        output.logs
        for step in steps.data
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
        if call.type == "code_interpreter"
        for output in call.code_interpreter.outputs
        if output.type == "logs"
    ]


AZURE_SHAPES = {
    # model: (path, query, the auth header it must carry)
    "gpt-4o-mini": (
        "/openai/deployments/gpt-4o-mini/chat/completions",
        {"api-version": API_VERSION},
        "api-key",
    ),
    "v1-deployment": ("/openai/v1/chat/completions", {}, "api-key"),
    "entra-deployment": (
        "/openai/deployments/entra-deployment/chat/completions",
        {"api-version": API_VERSION},
        "authorization",
    ),
}


@pytest.mark.parametrize("model", list(AZURE_SHAPES))
def test_azure_assistants_run_and_responses_call(
    sdk: openai.OpenAI, azure: ScriptedModel, model: str
) -> None:
    path, query, auth = AZURE_SHAPES[model]
    azure.script(Code("print(6 * 7)"), lambda m: Text(f"It is {last_tool_output(m).strip()}."))
    done = run(sdk, model)
    assert done.status == "completed", done.last_error
    assert logs_of(sdk, done) == ["42\n"]  # the code ran in the sandbox
    answer = sdk.beta.threads.messages.list(thread_id=done.thread_id).data[0].content[0]
    assert answer.type == "text" and answer.text.value == "It is 42."

    azure.script(Code("print(6 * 7)"), lambda m: Text(f"It is {last_tool_output(m).strip()}."))
    response = sdk.responses.create(model=model, input="what is 6 * 7?", tools=[CODE_TOOL])
    assert response.status == "completed" and response.output_text == "It is 42."

    assert len(azure.received) == 4 and len(azure.requests) == 4  # none refused by the gate
    for received in azure.received:
        assert (received.path, received.query) == (path, query)
        assert received.body["model"] == model
        other = {"api-key", "authorization"} - {auth}
        assert auth in received.headers and not other & received.headers.keys()
    if auth == "authorization":  # an Entra token the token route issued, not a key
        assert azure.received[0].headers["authorization"].startswith("Bearer ")


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(
    sdk: openai.OpenAI, plain: ScriptedModel
) -> None:
    plain.script(Text("done"))
    done = run(sdk, "o3-mini", temperature=0.3, top_p=0.5, max_completion_tokens=900)
    assert done.status == "completed", done.last_error
    (body,) = plain.requests
    assert body["model"] == "o3-mini" and body["max_completion_tokens"] == 900
    assert body["reasoning_effort"] == "low"  # the models file's default: the run asked for none
    assert not {"temperature", "top_p", "max_tokens"} & body.keys()
    assert plain.received[0].headers["authorization"] == f"Bearer {PLAIN_KEY}"


def test_upstream_name_is_what_the_provider_sees(sdk: openai.OpenAI, plain: ScriptedModel) -> None:
    plain.script(Text("done"))
    response = sdk.responses.create(model="alias", input="hi", temperature=0.3, max_output_tokens=300)
    assert response.status == "completed" and response.model == "alias"
    (body,) = plain.requests
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("the-real-name", 0.3, 300)


def test_rate_limit_fails_the_run_with_openais_code(sdk: openai.OpenAI, plain: ScriptedModel) -> None:
    limited = Fail(429, "Rate limit reached for requests", headers={"Retry-After": "0"})
    plain.script(limited, limited)
    done = run(sdk, "flaky-a")
    assert done.status == "failed" and done.last_error is not None
    assert done.last_error.code == "rate_limit_exceeded"
    assert done.last_error.message == (
        "The model provider 'plain' answered 429 Too Many Requests: Rate limit reached for requests "
        "(after 2 tries)"
    )
    assert len(plain.received) == 2


def test_timeouts_and_cut_streams_end_the_run_with_a_reason(sdk: openai.OpenAI, plain: ScriptedModel) -> None:
    plain.script(Slow(3, Text("too late")))
    done = run(sdk, "flaky-b")
    assert done.status == "failed" and done.last_error is not None
    assert done.last_error.code == "server_error"
    assert done.last_error.message.startswith("The model endpoint did not answer within 1 s")

    plain.reset()
    plain.script(Cut("The answer is"))
    response = sdk.responses.create(model="flaky-b", input="hi")
    assert response.status == "failed" and response.error is not None
    assert "answer was cut off" in response.error.message and "after 13 characters" in response.error.message
    [message] = response.output
    assert message.type == "message" and message.status == "incomplete"
    assert message.content[0].type == "output_text" and message.content[0].text == "The answer is"


def test_a_failed_run_leaves_nothing_in_progress(sdk: openai.OpenAI, plain: ScriptedModel) -> None:
    # The answer began streaming when the provider cut it: the message keeps what came, incomplete.
    plain.script(Cut("The answer is"))
    done = run(sdk, "flaky-a")
    assert done.status == "failed"
    [answer] = sdk.beta.threads.messages.list(thread_id=done.thread_id, run_id=done.id).data
    assert (answer.status, answer.content[0].text.value) == ("incomplete", "The answer is")
    assert answer.incomplete_details is not None and answer.incomplete_details.reason == "run_failed"
    steps = sdk.beta.threads.runs.steps.list(run_id=done.id, thread_id=done.thread_id).data
    assert [s.status for s in steps] == ["failed"]
    assert steps[0].last_error is not None and "cut off" in steps[0].last_error.message


def test_a_run_past_its_code_limit_fails_and_its_last_step_with_it(
    sdk: openai.OpenAI, plain: ScriptedModel
) -> None:
    # A small model that repeats itself: the default limit is 12 executions; the 13th call never runs.
    plain.script(*[Code("print(144)")] * 13)
    done = run(sdk, "flaky-a")
    assert done.status == "failed" and done.last_error is not None
    assert (
        done.last_error.message == "The run reached its limit of 12 code executions without a final answer."
    )
    steps = sdk.beta.threads.runs.steps.list(run_id=done.id, thread_id=done.thread_id, order="asc").data
    assert [s.status for s in steps] == ["completed"] * 12 + ["failed"]
    assert logs_of(sdk, done) == ["144\n"] * 12


def test_a_llama_cpp_style_stream_runs_the_code(sdk: openai.OpenAI, plain: ScriptedModel) -> None:
    """The whole tool call in one chunk, no id, finish_reason "stop", no usage: still a code step."""
    whole = {"index": 0, "function": {"name": "python", "arguments": '{"code": "print(6 * 7)"}'}}
    plain.script(
        Chunks(
            [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                {"choices": [{"index": 0, "delta": {"tool_calls": [whole]}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
        ),
        lambda m: Text(f"It is {last_tool_output(m).strip()}."),
    )
    done = run(sdk, "o3-mini")
    assert done.status == "completed", done.last_error
    assert logs_of(sdk, done) == ["42\n"]
    second = plain.requests[1]["messages"]
    (call,) = second[-2]["tool_calls"]
    assert call["id"].startswith("call_") and second[-1]["tool_call_id"] == call["id"]
    assert done.usage is not None and done.usage.prompt_tokens > 0  # estimated: the stream had none


def test_models_lists_what_the_file_configures(sdk: openai.OpenAI, providers_server: LiveServer) -> None:
    listed = sdk.models.list()
    assert [(m.id, m.owned_by) for m in listed.data] == [
        ("gpt-4o-mini", "azure-classic"),
        ("v1-deployment", "azure-v1"),
        ("entra-deployment", "azure-entra"),
        ("o3*", "plain"),
        ("alias", "plain"),
        ("flaky-*", "plain"),
    ]
    assert sdk.models.retrieve("o3-mini").owned_by == "plain"  # a glob's name resolves
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("gpt-5")
    assert missing.value.code == "model_not_found"


def test_a_bad_models_file_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[providers.p]\nbase_url = "http://127.0.0.1:9/v1"\n[[models]]\nmatch = "m"\nprovider = "q"\n'
    )
    server = LiveServer(tmp_path / "data", API_KEY, AGENTBOX_MODELS_FILE=str(path))
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert f"agentbox: {path}: models #1.provider: 'q' is not a [providers.NAME] (known: p)" in str(
        failed.value
    )
