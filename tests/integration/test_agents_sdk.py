"""The OpenAI Agents SDK (openai-agents, in .clients/agents) against the live server: an unmodified
Agent with CodeInterpreterTool, run by Runner.run (and a second turn chained on the first) and by
Runner.run_streamed."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import API_KEY
from tests.integration.test_responses_sdk import CANONICAL, brain, collapse, report
from tests.live_server import REPO, LiveServer
from tests.scripted_model import ScriptedModel

AGENTS = REPO / ".clients" / "agents" / "bin" / "python"
SCRIPT = REPO / "tests" / "clients" / "agents_flow.py"

pytestmark = pytest.mark.slow


def test_the_agents_sdk_runs_code_interpreter(
    live_server: LiveServer, scripted_model: ScriptedModel, pytestconfig: pytest.Config
) -> None:
    if not AGENTS.exists():
        pytest.fail(f"{AGENTS} is missing: `make test-setup` builds it")
    scripted_model.script(*[brain] * 20)
    done = subprocess.run(
        [str(AGENTS), str(SCRIPT), live_server.base_url, API_KEY],
        capture_output=True,
        text=True,
        timeout=240,
        # No OPENAI_API_KEY and tracing off: nothing may try api.openai.com.
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["sdk"] == "0.24.0"

    ran = seen["run"]
    assert "failed" not in ran, ran.get("trace")
    assert "42" in ran["final_output"]  # the number the code printed, in the agent's answer
    assert ran["item_types"] == ["tool_call_item", "message_output_item"]
    assert [c["status"] for c in ran["calls"]] == ["completed"]
    assert ran["calls"][0]["container_id"].startswith("cntr_")
    assert ran["calls"][0]["code"] == "answer = 6 * 7\nprint(answer)"
    assert ran["outputs_without_include"] == [None]
    # Chained on the first run: the same container still holds `answer`.
    assert [s.strip() for s in ran["chained_logs"]] == ["43"]
    assert "43" in ran["chained_final_output"]
    assert ran["chained_containers"] == [ran["calls"][0]["container_id"]]

    again = seen["replayed"]
    assert "failed" not in again, again.get("trace")
    assert [s.strip() for s in again["logs"]] == ["21"]  # the replayed call's container is reused
    assert len(again["containers"]) == 2 and again["containers"][0] == again["containers"][1]

    talk = seen["conversation"]
    assert "failed" not in talk, talk.get("trace")
    assert "still here" in talk["first"] and "STILL HERE" in talk["second"]
    assert len(talk["containers"]) == 2 and talk["containers"][0] == talk["containers"][1]
    assert talk["item_types"] == ["message", "code_interpreter_call", "message"] * 2

    streamed = seen["streamed"]
    assert "failed" not in streamed, streamed.get("trace")
    assert streamed["is_complete"] is True
    assert "45" in streamed["final_output"]
    assert (
        streamed["raw_types"][0] == "response.created" and streamed["raw_types"][-1] == "response.completed"
    )
    assert collapse(streamed["raw_types"]) == CANONICAL
    assert streamed["item_events"] == ["tool_called", "message_output_created"]
    assert [c["status"] for c in streamed["calls"]] == ["completed"]
    report(
        pytestconfig,
        f"openai-agents: Runner.run {ran['first_run_s']:.2f} s; "
        f"Runner.run_streamed first server event after {streamed['first_event_s'] * 1000:.0f} ms",
    )
