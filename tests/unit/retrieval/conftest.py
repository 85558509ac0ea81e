"""A real Store shared by a module, migrated, on each database agentbox keeps state in (SQLite with
its FTS5 index; PostgreSQL with its text search), and chunk records for it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from agentbox.store.database import Store
from agentbox.store.records import ChunkRecord
from tests.postgres_server import PostgresServer

_ids = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store(tmp_path_factory.mktemp("retrieval") / "agentbox.db")
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        store = Store(postgres.create_database(f"retrieval_{uuid.uuid4().hex[:12]}"))
    store.migrate()
    yield store
    store.close()


def chunk(
    store_id: str, file_id: str, text: str, position: int = 0, embedding: list[float] | None = None
) -> ChunkRecord:
    return ChunkRecord(
        id=f"chunk_{next(_ids)}",
        created_at=0,
        vector_store_id=store_id,
        file_id=file_id,
        position=position,
        text=text,
        tokens=len(text.split()),
        embedding=embedding,
    )
