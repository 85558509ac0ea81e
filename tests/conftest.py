"""Shared fixtures: the scripted model and a live agentbox server on loopback."""

from __future__ import annotations

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
