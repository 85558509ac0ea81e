"""A real Store (SQLite with the FTS5 index, migrated) shared by a module, and chunk records for it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from agentbox.store.database import Store
from agentbox.store.records import ChunkRecord

_ids = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("retrieval") / "agentbox.db")
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
