"""azure-ai-projects 2.10.0 (Foundry agents on the Responses protocol) against agentbox over HTTPS with a
managed-identity token from agentbox itself, in its own environment (.clients/foundry, spec §5)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.azure_identity_env import start_azure_server
from tests.conftest import API_KEY
from tests.integration.test_seed_scenario import PNG_MAGIC
from tests.live_server import REPO, LiveServer
from tests.scripted_model import Code, Messages, ScriptedModel, Text, last_tool_output

FOUNDRY = REPO / ".clients" / "foundry"
PYTHON = FOUNDRY / "bin" / "python"
SAMPLE = FOUNDRY / "sample" / "tools" / "sample_agent_code_interpreter_with_files.py"
SAMPLE_CSV = FOUNDRY / "sample" / "assets" / "synthetic_500_quarterly_results.csv"
AGENTS_SCRIPT = REPO / "tests" / "clients" / "foundry_agents.py"
IDENTITY_HEADER = "foundry-identity-header"

# Microsoft's CSV writes thousands with commas ("1,820.4"); TRANSPORTATION's operating profits
# are 185.2 + 310.2 + 510.6 + 575.1.
SAMPLE_TOTAL = "1581.1"
SAMPLE_CHART = """
import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv('/mnt/data/synthetic_500_quarterly_results.csv', thousands=',')
transport = df[df['sector'] == 'TRANSPORTATION']
print(f"TOTAL={round(transport['operating_profit'].sum(), 1)}")
ax = transport.plot.bar(x='name', y='operating_profit', figsize=(8, 4), legend=False)
ax.set_title('Operating profit, TRANSPORTATION')
plt.tight_layout()
plt.savefig('/mnt/data/transportation_operating_profit.png')
"""


@pytest.fixture(scope="module")
def foundry_server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    if not PYTHON.exists() or not SAMPLE.exists():
        pytest.fail(f"{FOUNDRY} is incomplete: `make test-setup` builds it")
    server = start_azure_server(
        tmp_path_factory.mktemp("foundry") / "data", scripted_model_server.base_url, IDENTITY_HEADER
    )
    yield server
    server.stop()


def identity_env(server: LiveServer, home: Path) -> dict[str, str]:
    """All the environment a client gets: DefaultAzureCredential finds only the local token route
    (no AZURE_* secrets), and both azure-core (requests) and openai (httpx2) trust the server."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "IDENTITY_ENDPOINT": f"{server.url}/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "REQUESTS_CA_BUNDLE": str(server.tls_cert),
        "SSL_CERT_FILE": str(server.tls_cert),
    }


def project_http(server: LiveServer, api_version: str | None = "v1") -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/projects/p",
        verify=server.tls_context(),
        headers={"Authorization": f"Bearer {API_KEY}"},
        params={"api-version": api_version} if api_version else {},
        timeout=60,
    )


def test_agent_versions_with_the_sdk(foundry_server: LiveServer, quarterly_csv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PYTHON), str(AGENTS_SCRIPT), f"{foundry_server.url}/api/projects/p", str(quarterly_csv)],
        capture_output=True,
        text=True,
        timeout=120,
        env=identity_env(foundry_server, tmp_path),
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    first = seen["first"]
    assert first["object"] == "agent.version" and first["status"] == "active"
    assert (first["id"], first["name"], first["version"]) == ("charts:1", "charts", "1")
    assert first["description"] == "Charts from CSV files." and first["metadata"] == {"team": "data"}
    assert isinstance(first["created_at"], int)
    definition = first["definition"]
    assert definition["kind"] == "prompt" and definition["model"] == "gpt-4o-mini"
    assert definition["temperature"] == 0.2
    (tool,) = definition["tools"]
    assert tool["type"] == "code_interpreter" and tool["container"]["type"] == "auto"
    assert tool["container"]["memory_limit"] == "1g" and tool["container"]["file_ids"][0].startswith("file-")

    assert seen["second"]["id"] == "charts:2" and seen["second"]["version"] == "2"
    assert [t["type"] for t in seen["second"]["tools"]] == ["code_interpreter", "function"]
    assert seen["second"]["tools"][1]["name"] == "get_weather"
    assert seen["agent"] == {
        "object": "agent",
        "id": "charts",
        "name": "charts",
        "latest": "2",
        "latest_instructions": "Second instructions.",
    }
    # limit=1 makes the SDK follow last_id page by page, to the empty page.
    assert seen["listed"] == ["charts", "other"]
    assert seen["listed_prompt"] == ["other", "charts"]
    assert seen["listed_hosted"] == []
    assert seen["versions"] == ["2", "1"]
    assert seen["version_one"] == {
        "instructions": "First instructions.",
        "file_ids": tool["container"]["file_ids"],
        "temperature": 0.2,
    }

    assert seen["deleted_version"] == {
        "object": "agent.version.deleted",
        "name": "charts",
        "version": "1",
        "deleted": True,
    }
    assert seen["gone_version"] == 404
    assert seen["after_delete_latest"] == "2"
    assert seen["third"] == "3"
    status, _code, message = seen["bad_name"]
    assert status == 400 and "bad name!" in message
    assert seen["deleted"] == {"object": "agent.deleted", "name": "charts", "deleted": True}
    assert seen["gone"] == 404
    assert seen["left"] == []


def test_agent_routes_refuse_bad_input(foundry_server: LiveServer, quarterly_csv: Path) -> None:
    with project_http(foundry_server) as http:

        def prompt(*tools: dict[str, Any]) -> dict[str, Any]:
            return {"definition": {"kind": "prompt", "model": "m", "tools": list(tools)}}

        code = "code_interpreter"
        cases = {
            "hosted kind": {"definition": {"kind": "hosted", "model": "m"}},
            "no model": {"definition": {"kind": "prompt"}},
            "unknown tool": prompt({"type": "web_search"}),
            "missing file": prompt({"type": code, "container": {"type": "auto", "file_ids": ["file-x"]}}),
            "bad memory": prompt({"type": code, "container": {"type": "auto", "memory_limit": "2g"}}),
            "unnamed function": prompt({"type": "function", "parameters": {}}),
            "metadata": {**prompt(), "metadata": {"k": 1}},
        }
        answers = {name: http.post("/agents/a1/versions", json=body) for name, body in cases.items()}
        for name, answer in answers.items():
            assert answer.status_code == 400, (name, answer.text)
            assert answer.json()["error"]["type"] == "invalid_request_error", name
        assert answers["missing file"].json()["error"]["param"] == "definition.tools[0].container.file_ids"
        assert http.get("/agents/a1").status_code == 404  # nothing was created
        assert http.get("/agents/a1/versions").status_code == 404
        assert http.delete("/agents/a1/versions/1").status_code == 404
        assert (
            http.post("/agents/a1/versions", params={"api-version": "2024-07-01-preview"}).status_code == 400
        )
        unsigned = httpx.get(
            f"{foundry_server.url}/api/projects/p/agents", verify=foundry_server.tls_context()
        )
        assert unsigned.status_code == 401


def test_preview_sdk_routes(foundry_server: LiveServer, quarterly_csv: Path) -> None:
    # azure-ai-projects 2.0.0b1-b3: `agents.create(name=…)`, `agents.update(name, …)` and the OpenAI
    # client at {endpoint}/openai with api-version 2025-11-15-preview.
    preview = "2025-11-15-preview"
    definition = {"kind": "prompt", "model": "gpt-4o-mini", "instructions": "Be brief."}
    with project_http(foundry_server, preview) as http:
        created = http.post("/agents", json={"name": "early", "definition": definition})
        assert created.status_code == 200, created.text
        assert created.json()["object"] == "agent"
        assert created.json()["versions"]["latest"]["id"] == "early:1"
        again = http.post("/agents", json={"name": "early", "definition": definition})
        assert again.status_code == 400 and again.json()["error"]["param"] == "name"
        updated = http.post("/agents/early", json={"definition": {**definition, "instructions": "Briefer."}})
        assert updated.json()["versions"]["latest"]["version"] == "2"
        assert http.post("/agents/none-such", json={"definition": definition}).status_code == 404

        with quarterly_csv.open("rb") as handle:
            upload = http.post("/openai/files", files={"file": handle}, data={"purpose": "assistants"})
        assert upload.status_code == 200, upload.text
        listed = http.get("/openai/files").json()["data"]
        assert upload.json()["id"] in [f["id"] for f in listed]
        assert http.get("/openai/files", params={"api-version": "v1"}).status_code == 400
        assert http.delete(f"/openai/files/{upload.json()['id']}").json()["deleted"] is True
        assert http.delete("/agents/early").json() == {
            "object": "agent.deleted",
            "name": "early",
            "deleted": True,
        }
    with project_http(foundry_server, None) as http:
        assert http.get("/openai/v1/files").status_code == 200
        assert http.get("/openai/v1/files", params={"api-version": "2024-01-01"}).status_code == 400


def chart_answer(messages: Messages) -> Text:
    total = last_tool_output(messages).split("TOTAL=")[1].split()[0]
    return Text(
        f"The TRANSPORTATION sector's operating profit totals {total}. "
        "[Download the bar chart](sandbox:/mnt/data/transportation_operating_profit.png)"
    )


def test_microsoft_sample_runs_unmodified(
    foundry_server: LiveServer, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    scripted_model.script(Code(SAMPLE_CHART), chart_answer)
    env = identity_env(foundry_server, tmp_path) | {
        "FOUNDRY_PROJECT_ENDPOINT": f"{foundry_server.url}/api/projects/p",
        "FOUNDRY_MODEL_NAME": "gpt-4o-mini",
    }

    done = subprocess.run(
        [str(PYTHON), SAMPLE.name], cwd=SAMPLE.parent, capture_output=True, text=True, timeout=180, env=env
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("File uploaded (id: file-")
    assert lines[1].startswith("Agent created (id: MyAgent:1, name: MyAgent, version: 1)")
    assert lines[2].startswith("Created conversation (id: conv_")
    assert lines[3].startswith("Response completed (id: resp_")
    assert lines[4].startswith("Found generated file: transportation_operating_profit.png (ID: cfile_")
    assert "Agent deleted" in lines and "No file generated in response" not in lines
    assert lines[-1] == f"File downloaded successfully: {tmp_path / 'transportation_operating_profit.png'}"
    chart = (tmp_path / "transportation_operating_profit.png").read_bytes()
    assert chart.startswith(PNG_MAGIC) and len(chart) > 5_000

    # The agent's definition reached the model: its instructions, and the code tool.
    first: dict[str, Any] = scripted_model.requests[0]
    system = " ".join(
        str(m.get("content")) for m in first["messages"] if m["role"] in ("system", "developer")
    )
    assert "You are a helpful assistant." in system
    assert first["model"] == "gpt-4o-mini" and first.get("tools")
    assert f"TOTAL={SAMPLE_TOTAL}" in last_tool_output(scripted_model.requests[1]["messages"])
    with project_http(foundry_server) as http:
        assert http.get("/agents/MyAgent").status_code == 404  # the sample deleted its only version
        conversation_id = lines[2].split("id: ")[1].rstrip(")")
        items = http.get(f"/openai/v1/conversations/{conversation_id}/items", params={"order": "asc"})
        assert items.status_code == 200, items.text
        kinds = [item["type"] for item in items.json()["data"]]
        assert kinds[0] == "message" and "code_interpreter_call" in kinds and kinds[-1] == "message"


def test_preview_response_names_its_agent(foundry_server: LiveServer, scripted_model: ScriptedModel) -> None:
    # 2.0.0b1-b3 sent the agent as `agent` to {endpoint}/openai/responses?api-version=2025-11-15-preview.
    scripted_model.script(Text("Hello from the early agent."))
    definition = {"kind": "prompt", "model": "early-model", "instructions": "Answer in one line."}
    with project_http(foundry_server, "2025-11-15-preview") as http:
        assert http.post("/agents", json={"name": "early-bird", "definition": definition}).status_code == 200
        answer = http.post(
            "/openai/responses",
            json={"input": "hi", "agent": {"name": "early-bird", "type": "agent_reference"}},
        )
        missing = http.post(
            "/openai/responses", json={"input": "hi", "agent": {"name": "nobody", "type": "agent_reference"}}
        )
        http.delete("/agents/early-bird")

    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert response["status"] == "completed" and response["model"] == "early-model"
    assert response["output"][-1]["content"][-1]["text"] == "Hello from the early agent."
    (request,) = scripted_model.requests
    assert request["model"] == "early-model"
    assert any("Answer in one line." in str(m["content"]) for m in request["messages"])
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]["message"]
