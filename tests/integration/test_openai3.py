"""openai 3.x, in its own environment, against the live server: every resource, polling, streaming."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.live_server import REPO, LiveServer
from tests.scripted_model import Code, ScriptedModel, Text, last_tool_output

OPENAI3 = REPO / ".clients" / "openai3" / "bin" / "python"
SCRIPT = REPO / "tests" / "clients" / "openai3_flow.py"
PLOT = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.show()"


def test_openai_3x_drives_every_resource(
    live_server: LiveServer, scripted_model: ScriptedModel, quarterly_csv: Path
) -> None:
    if not OPENAI3.exists():
        pytest.fail(f"{OPENAI3} is missing: `make setup` builds it")
    scripted_model.script(
        Code("import pandas as pd\nprint(len(pd.read_csv('synthetic_500_quarterly_results.csv')))"),
        lambda m: Text(last_tool_output(m)),
        Code(PLOT),
        Text("Chart above."),
    )
    done = subprocess.run(
        [str(OPENAI3), str(SCRIPT), live_server.base_url, API_KEY, str(quarterly_csv)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["file_status"] == "processed"
    assert seen["assistant_name"] == "renamed" and seen["assistant_listed"] is True
    assert seen["thread_metadata"] == {"k": "w"}
    assert seen["paged_messages"] == [f"note {i}" for i in range(5)]
    assert seen["poll_status"] == "completed"
    assert seen["poll_logs"].strip() == "500"
    assert seen["stream_events"][:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert seen["stream_events"][-1] == "thread.run.completed"
    assert seen["stream_parts"] == ["image_file", "text"]
    assert bytes.fromhex(seen["image_head"]) == b"\x89PNG\r\n\x1a\n"
    assert seen["deleted_file"] is True and seen["deleted_assistant"] is True
