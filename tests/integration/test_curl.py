"""The seed's REST calls with real curl against the Azure-prefixed URL (spec §3.7)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.integration.test_seed_scenario import CHART, PNG_MAGIC, answer_with_total, expected_total
from tests.live_server import LiveServer
from tests.scripted_model import Code, ScriptedModel

API_VERSION = "api-version=2024-12-01-preview"
PROJECT = (
    "/agents/v1.0/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/proj"
)
# The published sample's body, broken exactly as published: no colon after "tool_resources".
BROKEN_SAMPLE = (
    '{"instructions": "You are an AI assistant that can write code to help answer math questions.", '
    '"tools": [{ "type": "code_interpreter" }], "model": "gpt-4o-mini", '
    '"tool_resources"{ "code interpreter": { "file_ids": ["assistant-1234"] } }}'
)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel) -> Iterator[str]:
    server = LiveServer(
        tmp_path_factory.mktemp("curl") / "data",
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S="20",
    ).start()
    yield server.url + PROJECT
    server.stop()


def curl(url: str, *args: str) -> tuple[int, bytes]:
    """Run curl as a user would; return the HTTP status and the body."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
            "-H",
            f"Authorization: Bearer {API_KEY}",
            *args,
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def curl_json(url: str, *args: str) -> dict[str, Any]:
    status, body = curl(url, *args)
    assert status == 200, body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


JSON = ("-H", "Content-Type: application/json")


def test_seed_rest_calls(endpoint: str, scripted_model: ScriptedModel, quarterly_csv: Path) -> None:
    uploaded = curl_json(
        f"{endpoint}/files?{API_VERSION}", "-F", "purpose=assistants", "-F", f"file=@{quarterly_csv}"
    )
    assert uploaded["filename"] == quarterly_csv.name and uploaded["status"] == "processed"
    assistant = curl_json(
        f"{endpoint}/assistants?{API_VERSION}",
        *JSON,
        "-d",
        json.dumps(
            {
                "instructions": "You are an AI assistant that can write code to help answer questions.",
                "tools": [{"type": "code_interpreter"}],
                "model": "gpt-4o-mini",
                "tool_resources": {"code_interpreter": {"file_ids": [uploaded["id"]]}},
            }
        ),
    )
    thread = curl_json(f"{endpoint}/threads?{API_VERSION}", "-d", "")
    curl_json(
        f"{endpoint}/threads/{thread['id']}/messages?{API_VERSION}",
        *JSON,
        "-d",
        json.dumps({"role": "user", "content": "Create a bar chart of the TRANSPORTATION sector."}),
    )
    scripted_model.script(Code(CHART), answer_with_total)
    run = curl_json(
        f"{endpoint}/threads/{thread['id']}/runs?{API_VERSION}",
        *JSON,
        "-d",
        json.dumps({"assistant_id": assistant["id"]}),
    )

    # Poll as the REST sample does: GET the run until it leaves the active states, under a deadline.
    deadline = time.monotonic() + 60
    while run["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.2)
        run = curl_json(f"{endpoint}/threads/{thread['id']}/runs/{run['id']}?{API_VERSION}")
    assert run["status"] == "completed", run

    messages = curl_json(f"{endpoint}/threads/{thread['id']}/messages?{API_VERSION}")
    answer = messages["data"][0]
    assert answer["role"] == "assistant"
    image_part, text_part = answer["content"]
    assert f"totals {expected_total(quarterly_csv)}" in text_part["text"]["value"]
    status, chart = curl(f"{endpoint}/files/{image_part['image_file']['file_id']}/content?{API_VERSION}")
    assert status == 200 and chart.startswith(PNG_MAGIC)
    status, csv_bytes = curl(f"{endpoint}/files/{uploaded['id']}/content?{API_VERSION}")
    assert status == 200 and csv_bytes == quarterly_csv.read_bytes()


def test_the_published_broken_json_is_400_naming_the_problem(endpoint: str) -> None:
    status, body = curl(f"{endpoint}/assistants?{API_VERSION}", *JSON, "-d", BROKEN_SAMPLE)
    assert status == 400
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert "JSON" in error["message"] and "Expecting ':' delimiter" in error["message"]
    colon_expected_at = BROKEN_SAMPLE.index('"tool_resources"{') + len('"tool_resources"')
    assert f"at character {colon_expected_at}" in error["message"]


def test_wrong_api_version_is_400(endpoint: str) -> None:
    status, body = curl(f"{endpoint}/assistants?api-version=2099-01-01")
    assert status == 400
    error = json.loads(body)["error"]
    assert error["param"] == "api-version" and "2099-01-01" in error["message"]
