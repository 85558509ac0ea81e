"""The sandbox fleet on Ray (AGENTBOX_FLEET): two replicas that run no sandbox, two sandbox nodes of
a real Ray cluster on loopback (token auth), PostgreSQL and Swift for state and files.

A container's cells run on one node whichever replica is asked; a node killed mid-cell ends that
cell in words, leaves no process of its sessions behind, and the container's next cell runs on the
other node with /mnt/data back and the variables reported lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from agentbox.config import Settings
from agentbox.devtools import postgres
from agentbox.devtools.ray_cluster import RayCluster, sweep_node
from agentbox.sandbox.manager import cgroup_group
from tests.live_server import LiveServer
from tests.postgres_server import PostgresServer
from tests.replicas import start_all
from tests.sandbox_fixtures import requires_sandbox, worker_uid
from tests.scripted_model import Code, ScriptedModel, Text
from tests.swift_server import SwiftServer

pytestmark = requires_sandbox

API_KEY = "fleet-key"
NODES = 2
UID_BASE = worker_uid(1_400_000)
UID_SPAN = 10_000
"""Node i's sessions run as uids UID_BASE + i*UID_SPAN and up: a process's uid tells its node."""
RUNTIME = Path(__file__).resolve().parents[2] / ".runtime"


class Fleet:
    def __init__(
        self,
        root: Path,
        cluster: RayCluster,
        replicas: list[LiveServer],
        database: str,
        blobs: dict[str, str],
    ) -> None:
        self.root = root
        self.blobs = blobs
        self.cluster = cluster
        self.replicas = replicas
        self.database = database

    def api(self, index: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.replicas[index].base_url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=180,
        )

    def start_node(self, index: int) -> None:
        self.cluster.add_node(
            index,
            self.root / f"node-{index}",
            UID_BASE + index * UID_SPAN,
            RUNTIME,
            {**self.blobs, "AGENTBOX_POOL_SIZE": "0", "AGENTBOX_INTERRUPT_GRACE_S": "2"},
        )

    def revive(self, index: int) -> None:
        """Start node `index` again on its data dir, and wait until the replicas have started its
        actor (its fork server runs as the uid just below the node's sessions)."""
        self.start_node(index)
        fork_server_uid = UID_BASE + index * UID_SPAN - 1
        deadline = time.monotonic() + 120
        while fork_server_uid not in _processes_by_uid():
            assert time.monotonic() < deadline, f"node {index} did not come back"
            time.sleep(0.5)

    def node_of(self, key: str) -> str:
        with psycopg.connect(self.database) as connection:
            row = connection.execute("SELECT node FROM fleet_sessions WHERE key = %s", (key,)).fetchone()
        assert row is not None, f"no fleet session for {key}"
        return str(row[0])


@pytest.fixture(scope="module")
def fleet(
    postgres_server: PostgresServer,
    swift: SwiftServer,
    scripted_model_server: ScriptedModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    url = postgres_server.create_database("fleet")
    blobs = swift.blob_env(swift.new_bucket())
    # Ray's unix sockets live under its temp dir, and a socket's path can't pass 107 bytes: not
    # under pytest's (an xdist worker's basetemp adds a level).
    ray_root = Path(tempfile.mkdtemp(prefix="agentbox-ray-"))
    cluster = RayCluster(ray_root)
    replicas: list[LiveServer] = []
    fleet = Fleet(root, cluster, replicas, postgres.dsn(postgres_server.port, "fleet"), blobs)
    try:
        cluster.start_head()
        for index in range(NODES):
            fleet.start_node(index)
        for name in ("a", "b"):
            (root / name).mkdir()
        replicas += [
            LiveServer(
                root / name / "data",
                API_KEY,
                AGENTBOX_DATABASE_URL=url,
                AGENTBOX_FLEET=cluster.url,
                AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
                AGENTBOX_MODEL_API_KEY="scripted",
                **blobs,
                **cluster.auth_env(),
            )
            for name in ("a", "b")
        ]
        start_all(replicas)
        yield fleet
    finally:
        for server in replicas:
            server.stop()
        cluster.stop_all()
        for index in range(NODES):
            asyncio.run(sweep_node(root / f"node-{index}", UID_BASE + index * UID_SPAN, RUNTIME))
        shutil.rmtree(ray_root, ignore_errors=True)


def _cgroup_processes(sessions_dir: Path) -> list[str]:
    """Pids in any cgroup of the node's sessions (cgroup v1 controllers or the v2 tree)."""
    group = cgroup_group(sessions_dir)
    root = Path("/sys/fs/cgroup")
    found = []
    for pattern in (f"*/{group}/**/cgroup.procs", f"{group}/**/cgroup.procs"):
        for procs in root.glob(pattern):
            with contextlib.suppress(OSError):
                found += procs.read_text().split()
    return found


def _container(api: httpx.Client) -> str:
    response = api.post("/containers", json={"name": "fleet"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _exec(api: httpx.Client, container: str, code: str) -> dict[str, Any]:
    response = api.post(f"/containers/{container}/exec", json={"code": code})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _processes_by_uid() -> dict[int, list[int]]:
    """Real uid → pids of the processes running as it (from status: a sandbox process is not
    dumpable, so its /proc directory belongs to root)."""
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
            found.setdefault(uid, []).append(int(entry))
    return found


def _node_of_uid(uid: int) -> int | None:
    """The node whose sessions (or fork server, one uid below them) run as `uid`."""
    for index in range(NODES):
        low = UID_BASE + index * UID_SPAN - 1
        if low <= uid < low + UID_SPAN:
            return index
    return None


def _session_uids() -> set[int]:
    # every uid of a node but the one below its sessions, its fork server's
    return {uid for uid in _processes_by_uid() if _node_of_uid(uid) is not None and (uid + 1) % UID_SPAN}


def _node_processes(index: int) -> list[int]:
    return [pid for uid, pids in _processes_by_uid().items() if _node_of_uid(uid) == index for pid in pids]


def test_a_containers_cells_run_on_one_node_whichever_replica_is_asked(fleet: Fleet) -> None:
    with fleet.api(0) as a, fleet.api(1) as b:
        container = _container(a)
        first = _exec(a, container, "x = 41\nopen('/mnt/data/note.txt', 'w').write('kept')")
        assert first["status"] == "ok", first
        second = _exec(b, container, "print(x + 1, open('/mnt/data/note.txt').read())")
        assert second["status"] == "ok", second
        assert second["stdout"] == "42 kept\n"
        assert second["restarted"] is False
        listed = b.get(f"/containers/{container}/files")
        assert "/mnt/data/note.txt" in [f["path"] for f in listed.json()["data"]]
        assert fleet.node_of(container)
        chart = _exec(
            b,
            container,
            "import matplotlib; matplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3]); plt.savefig('/mnt/data/chart.png')",
        )
        assert chart["status"] == "ok", chart
        [image] = chart["images"]
        content = a.get(f"/containers/{container}/files/{image['id']}/content")
        assert content.status_code == 200, content.text
        assert content.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_run_on_one_replica_executes_on_a_node_and_its_thread_goes_on_from_the_other(
    fleet: Fleet, scripted_model: ScriptedModel
) -> None:
    a, b = (server.sdk() for server in fleet.replicas)
    assistant = a.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = b.beta.threads.create(messages=[{"role": "user", "content": "what is 6 * 7?"}])
    scripted_model.script(Code("answer = 6 * 7\nprint(answer)"), Text("It is 42."))
    run = a.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    scripted_model.script(Code("print(answer + 1)"), Text("Then 43."))
    b.beta.threads.messages.create(thread.id, role="user", content="and plus one?")
    again = b.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert again.status == "completed", again.last_error
    steps = a.beta.threads.runs.steps.list(thread_id=thread.id, run_id=again.id, order="asc").data
    call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert [o.logs for o in call.code_interpreter.outputs] == ["43\n"]  # type: ignore[union-attr]
    assert fleet.node_of(thread.id)


def _new_session_node(before: set[int]) -> int:
    """The node of the one session that started since `before` was taken."""
    [uid] = _session_uids() - before
    index = _node_of_uid(uid)
    assert index is not None
    return index


def test_a_node_killed_during_a_run_ends_its_cell_and_the_run_goes_on_elsewhere_with_the_files(
    fleet: Fleet, scripted_model: ScriptedModel
) -> None:
    a, b = (server.sdk() for server in fleet.replicas)
    assistant = a.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = a.beta.threads.create(messages=[{"role": "user", "content": "keep a table"}])
    before = _session_uids()
    scripted_model.script(Code("open('/mnt/data/table.csv', 'w').write('a,b\\n1,2\\n')"), Text("Kept."))
    first = a.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert first.status == "completed", first.last_error
    index = _new_session_node(before)

    scripted_model.script(
        Code("import time\nprint('working', flush=True)\ntime.sleep(60)"),
        Code("print(open('/mnt/data/table.csv').read())"),
        Text("The table is back."),
    )
    b.beta.threads.messages.create(thread.id, role="user", content="now work on it")
    run = b.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    time.sleep(4)  # the first cell sleeps on its node
    fleet.cluster.kill(f"node-{index}")
    try:
        deadline = time.monotonic() + 120
        while (run := a.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run.id)).status in (
            "queued",
            "in_progress",
        ):
            assert time.monotonic() < deadline, "the run did not end"
            time.sleep(0.5)
        assert run.status == "completed", run.last_error
        steps = a.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc").data
        calls = [call for step in steps if step.type == "tool_calls" for call in step.step_details.tool_calls]  # type: ignore[union-attr]
        logs = ["".join(o.logs for o in call.code_interpreter.outputs) for call in calls]  # type: ignore[union-attr]
        assert "sandbox node running this session stopped" in logs[0]
        assert "a,b\n1,2" in logs[1]
        answer = a.beta.threads.messages.list(thread.id).data[0]
        assert answer.content[0].text.value == "The table is back."  # type: ignore[union-attr]
        told = json.dumps(scripted_model.requests[-1]["messages"])
        assert "variables" in told and "restored" in told  # the model hears what was lost and kept
        assert _wait_gone(index), "processes of the dead node's sessions are still alive"
    finally:
        fleet.revive(index)


def _wait_gone(index: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while _node_processes(index):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_a_node_killed_mid_cell_leaves_nothing_and_the_next_cell_runs_elsewhere_with_its_files(
    fleet: Fleet,
) -> None:
    with fleet.api(0) as a, fleet.api(1) as b:
        container = _container(a)
        sessions_before = _session_uids()
        setup = _exec(a, container, "x = 7\nopen('/mnt/data/data.csv', 'w').write('q,v\\n1,10\\n')")
        assert setup["status"] == "ok", setup
        node = fleet.node_of(container)
        index = _new_session_node(sessions_before)

        result: dict[str, Any] = {}
        cell = threading.Thread(
            target=lambda: result.update(
                _exec(a, container, "import time\nprint('working', flush=True)\ntime.sleep(60)")
            )
        )
        cell.start()
        time.sleep(3)  # the cell is sleeping on its node
        killed_at = time.monotonic()
        fleet.cluster.kill(f"node-{index}")
        cell.join(120)
        assert not cell.is_alive()
        assert result["status"] == "killed", result
        assert "sandbox node running this session stopped" in result["error"]["value"]
        noticed_s = time.monotonic() - killed_at

        deadline = time.monotonic() + 30
        while _node_processes(index) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _node_processes(index) == [], "processes of the dead node's sessions are still alive"
        sessions_dir = Settings(data_dir=fleet.root / f"node-{index}").sandbox_config().sessions_dir
        assert _cgroup_processes(sessions_dir) == [], "a cgroup of the dead node's sessions holds a process"

        after = _exec(b, container, "print(open('/mnt/data/data.csv').read()); print('x' in dir())")
        assert after["status"] == "ok", after["error"]
        assert after["stdout"] == "q,v\n1,10\n\nFalse\n"
        assert after["restarted"] is True
        assert "sandbox node holding this session stopped" in after["state_lost_reason"]
        assert "restored" in after["state_lost_reason"]
        assert fleet.node_of(container) != node
        assert {_node_of_uid(uid) for uid in _session_uids()} == {1 - index}
        print(f"the replica noticed the dead node after {noticed_s:.1f} s")


def test_with_every_node_gone_a_cell_is_refused_in_words_and_the_api_stays_up(fleet: Fleet) -> None:
    with fleet.api(0) as a, fleet.api(1) as b:
        container = _container(a)
        assert _exec(a, container, "print('placed')")["stdout"] == "placed\n"
        for name in [n for n in fleet.cluster.nodes if n != "head"]:
            fleet.cluster.kill(name)
        refused = b.post(f"/containers/{container}/exec", json={"code": "print('anyone?')"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["message"].startswith("No sandbox node of the fleet is alive")
        assert b.get(f"/containers/{container}").status_code == 200  # state is still served
