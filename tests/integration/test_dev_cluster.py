"""scripts/dev-cluster: `up` starts PostgreSQL, Swift and two replicas that share state and files and
take the caller's AGENTBOX_* settings; `status` lists the replicas; `down` leaves nothing behind.
With --nodes, the replicas' sessions run on Ray sandbox nodes that `down` stops too."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import REPO
from tests.sandbox_fixtures import requires_sandbox
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


@requires_sandbox
def test_nodes_run_the_replicas_sessions_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = dev_cluster(
        state, "up", "--replicas", "1", "--nodes", "1", AGENTBOX_API_KEYS=API_KEY, AGENTBOX_POOL_SIZE="0"
    )
    recorded: dict[str, Any] = {"processes": [], "temp_dirs": []}
    try:
        recorded = json.loads((state / "cluster.json").read_text()) if started.returncode == 0 else recorded
        assert started.returncode == 0, started.stderr
        [url] = started.stdout.splitlines()
        status = dev_cluster(state, "status")
        assert (status.returncode, status.stdout.splitlines()) == (0, [url])
        assert "fleet: ray://127.0.0.2:" in status.stderr

        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=180) as api:
            created = api.post("/containers", json={"name": "dev-cluster"})
            assert created.status_code == 200, created.text
            ran = api.post(f"/containers/{created.json()['id']}/exec", json={"code": "print(6*7)"})
            assert ran.status_code == 200, ran.text
            assert (ran.json()["status"], ran.json()["stdout"]) == ("ok", "42\n"), ran.json()
        # The session ran on the node, as one of its uids (1_510_000 and up), not in the replica.
        assert any(1_510_000 <= uid < 1_520_000 for uid in _uids()), "no session process on node 1"
    finally:
        down = dev_cluster(state, "down")
    assert down.returncode == 0, down.stderr
    processes, temp_dirs = recorded["processes"], recorded["temp_dirs"]
    assert {p["name"] for p in processes} >= {"replica-1", "ray-head", "ray-node-1"}
    assert [p["name"] for p in processes if running(p["pid"], p["started"])] == []
    groups = {p["pid"] for p in processes}
    assert [pid for pid, group in _groups().items() if group in groups] == []  # Ray's raylets, workers
    assert [d for d in temp_dirs if Path(d).exists()] == []


def _uids() -> set[int]:
    """Every process's real uid (from status: a sandbox process's /proc directory belongs to root)."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{entry}/status").read_text()
            found.add(next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")))
    return found


def _groups() -> dict[int, int]:
    """Each live process's process group."""
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] not in "ZX":
                found[int(entry)] = int(fields[2])
    return found
