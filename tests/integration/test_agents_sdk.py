"""The OpenAI Agents SDK (openai-agents, in .clients/agents) against the live server: an unmodified
Agent with CodeInterpreterTool, run by Runner.run (chained by previous_response_id, by replayed
items, and in a server-side conversation) and by Runner.run_streamed.

One run of tests/clients/agents_flow.py serves every test here; each test reads its own part."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.integration.test_responses_sdk import CANONICAL, brain, collapse, report
from tests.live_server import REPO, LiveServer
from tests.scripted_model import ScriptedModel

AGENTS = REPO / ".clients" / "agents" / "bin" / "python"
SCRIPT = REPO / "tests" / "clients" / "agents_flow.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agents_run(live_server: LiveServer, scripted_model_server: ScriptedModel) -> dict[str, Any]:
    if not AGENTS.exists():
        pytest.fail(f"{AGENTS} is missing: `make test-setup` builds it")
    scripted_model_server.reset()
    scripted_model_server.script(*[brain] * 30)
    try:
        done = subprocess.run(
            [str(AGENTS), str(SCRIPT), live_server.base_url, API_KEY],
            capture_output=True,
            text=True,
            timeout=240,
            # No OPENAI_API_KEY and tracing off: nothing may try api.openai.com.
            env={"PATH": "/usr/bin:/bin"},
        )
    finally:
        scripted_model_server.reset()
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout)
    assert seen["sdk"] == "0.24.0"
    return seen


def part(seen: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = seen[name]
    assert "failed" not in result, result.get("trace")
    return result


def test_runner_run_and_a_chained_second_turn(
    agents_run: dict[str, Any], pytestconfig: pytest.Config
) -> None:
    ran = part(agents_run, "run")
    assert "42" in ran["final_output"]  # the number the code printed, in the agent's answer
    assert ran["item_types"] == ["tool_call_item", "message_output_item"]
    assert [c["status"] for c in ran["calls"]] == ["completed"]
    assert ran["calls"][0]["container_id"].startswith("cntr_")
    assert ran["calls"][0]["code"] == "answer = 6 * 7\nprint(answer)"
    assert ran["outputs_without_include"] == [None]
    # Chained on the first run by previous_response_id: the same container still holds `answer`.
    assert [s.strip() for s in ran["chained_logs"]] == ["43"]
    assert "43" in ran["chained_final_output"]
    assert ran["chained_containers"] == [ran["calls"][0]["container_id"]]
    report(pytestconfig, f"openai-agents: Runner.run with one code cell {ran['first_run_s']:.2f} s")


def test_replayed_items_keep_the_container(agents_run: dict[str, Any]) -> None:
    # result.to_input_list() + a new message: the replayed code_interpreter_call is in the model's
    # context, so auto mode reuses its container (spec §2.1) and `carried` is still defined.
    again = part(agents_run, "replayed")
    assert [s.strip() for s in again["logs"]] == ["21"], again["logs"]
    assert len(again["containers"]) == 2 and again["containers"][0] == again["containers"][1]


def test_a_conversation_keeps_variables(agents_run: dict[str, Any]) -> None:
    talk = part(agents_run, "conversation")
    assert "still here" in talk["first"] and "STILL HERE" in talk["second"]
    assert len(talk["containers"]) == 2 and talk["containers"][0] == talk["containers"][1]
    assert talk["item_types"] == ["message", "code_interpreter_call", "message"] * 2


def test_runner_run_streamed(agents_run: dict[str, Any], pytestconfig: pytest.Config) -> None:
    streamed = part(agents_run, "streamed")
    assert streamed["is_complete"] is True
    assert "45" in streamed["final_output"]
    assert collapse(streamed["raw_types"]) == CANONICAL
    assert streamed["item_events"] == ["tool_called", "message_output_created"]
    assert [c["status"] for c in streamed["calls"]] == ["completed"]
    report(
        pytestconfig,
        f"openai-agents: Runner.run_streamed first server event {streamed['first_event_s'] * 1000:.0f} ms",
    )
