from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_fixtures import Harness, skip_reason


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason is None:
        return
    for item in items:
        if "tests/security" in str(item.path):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A warm manager shared by a module's tests: for promises about one session, not lifecycles."""
    harness = Harness(tmp_path_factory.mktemp("sessions"))
    yield harness
    harness.close()
