"""Shared fixtures: the scripted model and a live agentbox server on loopback."""

from __future__ import annotations

import getpass
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.scripted_model import ScriptedModel

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
API_KEY = "sk-test-agentbox"


@pytest.fixture(scope="session")
def quarterly_csv() -> Path:
    path = FIXTURES / "synthetic_500_quarterly_results.csv"
    if not path.exists():
        pytest.fail(f"test fixture missing: {path} (shared/ must sit beside the checkout)")
    return path


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
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("agentbox") / "data"
    server = LiveServer(
        data_dir,
        API_KEY,
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S="20",
    ).start()
    yield server
    server.stop()


def _leftover_session_mounts() -> list[str]:
    """Session filesystems still mounted under pytest's temp root (a killed server leaves them)."""
    root = str(Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}") + "/"
    found = []
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            mount_point, source = fields[4], fields[-2]
            if mount_point.startswith(root) and source.startswith("agentbox-"):
                found.append(mount_point)
    return found


def _unmount(mount_points: list[str]) -> None:
    for mount_point in mount_points:
        subprocess.run(["umount", "--lazy", mount_point], check=False, capture_output=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    # pytest deletes old temp dirs; a session tmpfs left in one would make that (and the run) fail.
    _unmount(_leftover_session_mounts())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _unmount(_leftover_session_mounts())
