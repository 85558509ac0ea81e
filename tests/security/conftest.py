from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_fixtures import BACKENDS, Harness, backend_skip_reason, skip_reason, worker_uid


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason is None:
        return
    for item in items:
        if "tests/security" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every security test runs once per backend."""
    name: str = request.param
    reason = backend_skip_reason(name)
    if reason is not None:
        pytest.skip(reason)
    return name


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Harness]:
    """A warm manager shared by a module's tests: for promises about one session, not lifecycles."""
    uid_base = worker_uid(1_300_000 if backend == "bubblewrap" else 1_400_000)
    harness = Harness(tmp_path_factory.mktemp("sessions"), backend=backend, uid_base=uid_base)
    yield harness
    harness.close()
