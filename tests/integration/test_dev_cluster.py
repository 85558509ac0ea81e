"""scripts/dev-cluster: `up` starts PostgreSQL, Swift and two replicas that share state and files and
take the caller's AGENTBOX_* settings; `status` lists the replicas; `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import REPO
from tests.scripted_model import ScriptedModel, Text

DEV_CLUSTER = REPO / "scripts" / "dev-cluster"

pytestmark = pytest.mark.slow


def dev_cluster(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTBOX_DEV_CLUSTER_DIR": str(state), **env}
    return subprocess.run(
        [str(DEV_CLUSTER), *args], env=environment, capture_output=True, text=True, timeout=240
    )


def running(pid: int, started: int) -> bool:
    """The recorded process is still there (a zombie nobody reaped yet has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in "ZX" and int(fields[19]) == started


@pytest.fixture
def cluster(tmp_path: Path, scripted_model: ScriptedModel) -> Iterator[tuple[Path, list[str]]]:
    state = tmp_path / "state"
    model = {"AGENTBOX_MODEL_BASE_URL": scripted_model.base_url, "AGENTBOX_MODEL_API_KEY": "scripted"}
    started = dev_cluster(state, "up", "--replicas", "2", AGENTBOX_API_KEYS=API_KEY, **model)
    try:
        assert started.returncode == 0, started.stderr
        yield state, started.stdout.splitlines()
    finally:
        dev_cluster(state, "down")


def test_replicas_share_state_and_files_and_down_leaves_nothing(
    cluster: tuple[Path, list[str]], scripted_model: ScriptedModel
) -> None:
    state, printed = cluster
    status = dev_cluster(state, "status")
    assert status.returncode == 0, status.stderr
    urls = status.stdout.splitlines()
    assert urls == printed
    assert len(urls) == 2
    assert all(url.startswith("http://127.0.0.1:") and url.endswith("/v1") for url in urls)

    a, b = (openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0) for url in urls)
    assistant = a.beta.assistants.create(model="m", instructions="Be brief.")
    assert b.beta.assistants.retrieve(assistant.id).instructions == "Be brief."
    data = os.urandom(100_000)
    uploaded = b.files.create(file=("numbers.bin", data), purpose="assistants")
    assert a.files.content(uploaded.id).read() == data  # from the bucket: a's data dir never had it
    scripted_model.script(Text("from the model"))
    assert a.responses.create(model="m", input="hi").output_text == "from the model"

    recorded: dict[str, Any] = json.loads((state / "cluster.json").read_text())
    processes, temp_dirs = recorded["processes"], recorded["temp_dirs"]
    assert all(running(p["pid"], p["started"]) for p in processes)
    assert dev_cluster(state, "down").returncode == 0
    assert [p["name"] for p in processes if running(p["pid"], p["started"])] == []
    assert [d for d in temp_dirs if Path(d).exists()] == []
    assert not (state / "cluster.json").exists()
    gone = dev_cluster(state, "status")
    assert (gone.returncode, gone.stdout) == (1, "")
    assert dev_cluster(state, "down").returncode == 0  # again: nothing to do


def test_nodes_wait_for_the_ray_fleet(tmp_path: Path) -> None:
    refused = dev_cluster(tmp_path, "up", "--nodes", "1")
    assert refused.returncode == 2
    assert "Ray fleet" in refused.stderr
    assert not (tmp_path / "cluster.json").exists()
