"""Several `agentbox serve` replicas sharing one database (AGENTBOX_DATABASE_URL), as the replica
tests and bench/replicas.py start them: each with a data dir of its own (sessions, uids and local
files are per machine), started at once."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.live_server import LiveServer
from tests.scripted_model import ScriptedModel


def replica(data_dir: Path, api_key: str, database_url: str, model: ScriptedModel, **env: str) -> LiveServer:
    """One replica (not started) on `database_url` ("" for SQLite in its data dir) and the model;
    `env` adds AGENTBOX_* settings."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    database = {"AGENTBOX_DATABASE_URL": database_url} if database_url else {}
    return LiveServer(
        data_dir,
        api_key,
        AGENTBOX_MODEL_BASE_URL=model.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        **database,
        **env,
    )


def start_all(servers: Sequence[LiveServer]) -> list[LiveServer]:
    """Start every server at once (replicas that start together migrate together)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(LiveServer.start, servers))


def stop_all(servers: Sequence[LiveServer]) -> None:
    for server in servers:
        server.stop()


def model_for_load(model: ScriptedModel) -> ScriptedModel:
    """socketserver listens with a backlog of 5 and answers HTTP/1.0 (a connection per request):
    hundreds of runs asking at once would see SYNs dropped and retried a second later."""
    model._server.socket.listen(1024)
    return model
