"""Shared fixtures: the scripted model and a live agentbox server on loopback."""

from __future__ import annotations

import getpass
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.live_server import LiveServer
from tests.postgres_server import PostgresServer
from tests.sandbox_fixtures import SERVER_UID_BASE, cell_seconds, worker_uid
from tests.scripted_model import ScriptedModel
from tests.swift_server import SwiftServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
API_KEY = "sk-test-agentbox"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="What the shared live_server keeps its state in: SQLite in its data dir (the default), "
        "or a real PostgreSQL the suite starts (AGENTBOX_DATABASE_URL).",
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def database_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """The live_server's AGENTBOX_DATABASE_URL under --database=postgresql; nothing for SQLite."""
    if request.config.getoption("--database") != "postgresql":
        return {}
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return {"AGENTBOX_DATABASE_URL": postgres.create_database("suite")}


@pytest.fixture(scope="session")
def quarterly_csv() -> Path:
    return EXAMPLES / "synthetic_500_quarterly_results.csv"


@pytest.fixture(scope="session")
def scripted_model_server() -> Iterator[ScriptedModel]:
    model = ScriptedModel().start()
    yield model
    model.stop()


@pytest.fixture
def scripted_model(scripted_model_server: ScriptedModel) -> Iterator[ScriptedModel]:
    scripted_model_server.reset()
    yield scripted_model_server
    scripted_model_server.reset()


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    scripted_model_server: ScriptedModel,
    database_settings: dict[str, str],
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("agentbox") / "data"
    server = LiveServer(
        data_dir,
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
        **database_settings,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftServer]:
    """A real S3 server (Swift with s3api) on loopback for the whole session."""
    server = SwiftServer(tmp_path_factory.mktemp("swift")).start()
    yield server
    server.stop()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """Plain HTTP to the live server's /v1 with the test key, for what an SDK would not send."""
    with live_server.http() as client:
        yield client


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    """The real openai SDK against the live server; no retries, so every error shows."""
    with live_server.sdk() as client:
        yield client


RETAINED_RUNS = 3  # pytest keeps the temp dirs of its last three runs and deletes older ones


def _session_mounts_under(roots: list[Path]) -> list[str]:
    """Session filesystems (tmpfs named agentbox-…) mounted somewhere below these directories."""
    prefixes = [str(root) + "/" for root in roots]
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point, source = fields[4], fields[-2]
            if source.startswith("agentbox-") and mount_point.startswith(tuple(prefixes)):
                found.append(mount_point)
    return found


def _stale_temp_roots() -> list[Path]:
    """pytest temp dirs that pytest itself is about to delete: never those of a run still going."""
    root = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    if not root.is_dir():
        return []
    numbered = sorted(
        (p for p in root.iterdir() if p.name.startswith("pytest-") and p.name[7:].isdigit()),
        key=lambda p: int(p.name[7:]),
    )
    return [p for p in root.iterdir() if p.name.startswith("garbage-")] + numbered[:-RETAINED_RUNS]


def _unmount(mount_points: list[str]) -> None:
    for mount_point in mount_points:
        subprocess.run(["umount", "--lazy", mount_point], check=False, capture_output=True)


def pytest_configure(config: pytest.Config) -> None:
    # Every agentbox a test starts (live servers, `agentbox exec`, the dev cluster) inherits its
    # sessions' uids from here: each pytest-xdist worker gets its own range (worker_uid).
    os.environ.setdefault("AGENTBOX_SANDBOX_UID_BASE", str(worker_uid(SERVER_UID_BASE)))


def pytest_sessionstart(session: pytest.Session) -> None:
    # A session tmpfs left by a killed server in an old temp dir would make pytest's deletion of
    # that dir (and so the run) fail.
    _unmount(_session_mounts_under(_stale_temp_roots()))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    own = [factory.getbasetemp()] if factory is not None and factory._basetemp is not None else []
    _unmount(_session_mounts_under(own + _stale_temp_roots()))
