"""The store's tests run on SQLite and on PostgreSQL: every test gets an empty database of each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentbox.store.database import Store
from tests.postgres_server import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agentbox.sqlite3'}"
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return postgres.create_database(f"store_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    store = Store(database)
    store.migrate()
    yield store
    store.close()
