"""The chunks of vector store files, stored in the Store's database and ranked two ways.

- full_text: SQLite FTS5 (table chunks_fts, kept in step with chunks by triggers), BM25; on
  PostgreSQL its text search (GIN index ix_chunks_text), ts_rank_cd. The user's query never reaches
  either syntax as written: its words are quoted one by one and OR-ed.
- dense: cosine similarity between a query vector and the chunks' stored embeddings (numpy).

Both return (chunk_id, score) best first, higher is better, restricted to the given vector stores
and, when `file_ids` is not None, to those files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import weakref
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from sqlalchemy import BindParameter, bindparam, delete, insert, select, text
from sqlalchemy.engine import Connection

from agentbox.store import tables
from agentbox.store.database import Store
from agentbox.store.records import ChunkRecord

Ranking = list[tuple[str, float]]

MAX_QUERY_TERMS = 64
_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer calls a token: letters and digits
_STOPWORDS = frozenset(
    (  # noqa: SIM905
        "a an and are as at be but by do does for from has have how i if in into is it its of on or so "
        "than that the their then there these this those to was were what when where which who why "
        "will with you your"
    ).split()
)
_CHUNK_FIELDS = tuple(f.name for f in dataclasses.fields(ChunkRecord))


async def add_chunks(store: Store, records: Sequence[ChunkRecord]) -> None:
    if not records:
        return
    rows = [{name: getattr(r, name) for name in _CHUNK_FIELDS} for r in records]  # asdict deep-copies
    await store._run(lambda c: c.execute(insert(tables.chunks), rows))
    _cache(store).update((r.id, _unit(r.embedding)) for r in records)


async def remove_chunks(store: Store, vector_store_id: str, file_id: str | None = None) -> None:
    """A file's chunks in one vector store, or all of the store's when file_id is None."""
    columns = tables.chunks.c
    where = [columns.vector_store_id == vector_store_id]
    if file_id is not None:
        where.append(columns.file_id == file_id)

    def work(c: Connection) -> list[str]:
        ids = list(c.execute(select(columns.id).where(*where)).scalars())
        c.execute(delete(tables.chunks).where(*where))
        return ids

    cache = _cache(store)
    for chunk_id in await store._run(work):
        cache.pop(chunk_id, None)


async def get_chunks(store: Store, chunk_ids: Collection[str]) -> dict[str, ChunkRecord]:
    """The chunks with these ids (missing ones left out), by id."""
    if not chunk_ids:
        return {}
    query = select(*(tables.chunks.c[name] for name in _CHUNK_FIELDS)).where(
        tables.chunks.c.id.in_(list(chunk_ids))
    )

    def work(c: Connection) -> list[dict[str, Any]]:
        return [dict(r) for r in c.execute(query).mappings()]

    return {row["id"]: ChunkRecord(**row) for row in await store._run(work)}


_FULL_TEXT = {
    # bm25() is lower for better matches
    "sqlite": (
        "SELECT chunks.id AS id, -bm25(chunks_fts) AS score FROM chunks_fts "
        "JOIN chunks ON chunks.seq = chunks_fts.rowid "
        "WHERE chunks_fts MATCH :expression AND chunks.vector_store_id IN :store_ids"
    ),
    # websearch_to_tsquery reads the quoted, OR-ed words as FTS5 does, and 'english' stems as the
    # FTS5 table's porter tokenizer does; the expression is the GIN index's, so the index serves @@
    "postgresql": (
        "SELECT chunks.id AS id, ts_rank_cd(to_tsvector('english', chunks.text), query) AS score "
        "FROM chunks, websearch_to_tsquery('english', :expression) AS query "
        "WHERE to_tsvector('english', chunks.text) @@ query AND chunks.vector_store_id IN :store_ids"
    ),
}


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for any user text: its distinct words, quoted, OR-ed (None: no words).

    Common English words are left out unless the query has nothing else.
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    meaningful = [w for w in words if w not in _STOPWORDS] or words
    if not meaningful:
        return None
    return " OR ".join(f'"{w}"' for w in meaningful[:MAX_QUERY_TERMS])


async def full_text(
    store: Store, store_ids: Sequence[str], query: str, k: int, file_ids: Collection[str] | None = None
) -> Ranking:
    """The k chunks the database's full-text ranking puts first for the query's words (-bm25 on
    SQLite, ts_rank_cd on PostgreSQL; > 0, higher is better)."""
    expression = match_expression(query)
    if expression is None or not store_ids or k <= 0 or (file_ids is not None and not file_ids):
        return []
    sql = _FULL_TEXT[store.dialect]
    params: dict[str, Any] = {"expression": expression, "store_ids": list(store_ids), "k": k}
    binds: list[BindParameter[Any]] = [bindparam("store_ids", expanding=True)]
    if file_ids is not None:
        sql += " AND chunks.file_id IN :file_ids"
        params["file_ids"] = list(file_ids)
        binds.append(bindparam("file_ids", expanding=True))
    statement = text(sql + " ORDER BY score DESC LIMIT :k").bindparams(*binds)

    def work(c: Connection) -> Ranking:
        return [(row.id, float(row.score)) for row in c.execute(statement, params)]

    return await store._run(work)


async def dense(
    store: Store,
    store_ids: Sequence[str],
    vector: Sequence[float],
    k: int,
    file_ids: Collection[str] | None = None,
) -> Ranking:
    """The k chunks whose embeddings are nearest the vector by cosine; score in [-1, 1].

    Chunks without an embedding, or with one of another dimension (a changed model), are skipped.
    """
    if not store_ids or k <= 0 or not vector or (file_ids is not None and not file_ids):
        return []
    columns = tables.chunks.c
    query = select(columns.id).where(columns.vector_store_id.in_(list(store_ids)))
    if file_ids is not None:
        query = query.where(columns.file_id.in_(list(file_ids)))
    ids: list[str] = await store._run(lambda c: list(c.execute(query).scalars()))
    cache = _cache(store)
    missing = [chunk_id for chunk_id in ids if chunk_id not in cache]
    if missing:
        cache.update(await store._run(lambda c: _read_vectors(c, missing)))
    target = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(target))
    usable = [(i, v) for i in ids if (v := cache.get(i)) is not None and v.shape == target.shape]
    if not usable:
        return []

    def score() -> Ranking:
        matrix = np.stack([v for _, v in usable])
        scores = matrix @ (target / norm if norm else target)
        best = np.argsort(-scores, kind="stable")[:k]
        return [(usable[i][0], float(scores[i])) for i in best]

    return await asyncio.to_thread(score)


# Parsing stored embeddings (JSON) costs far more than ranking them, and a chunk never changes once
# written: each Store keeps its chunks' unit vectors (None: no embedding) in memory, filled as
# chunks are added or first searched, emptied of removed chunks, and cleared when too large.
MAX_CACHED_VECTORS = 500_000
_VECTORS: weakref.WeakKeyDictionary[Store, dict[str, np.ndarray | None]] = weakref.WeakKeyDictionary()


def _cache(store: Store) -> dict[str, np.ndarray | None]:
    cache = _VECTORS.setdefault(store, {})
    if len(cache) > MAX_CACHED_VECTORS:
        cache.clear()
    return cache


def _unit(embedding: Sequence[float] | None) -> np.ndarray | None:
    if not embedding:  # a missing embedding may be stored as JSON null rather than SQL NULL
        return None
    array = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def _read_vectors(c: Connection, chunk_ids: list[str]) -> dict[str, np.ndarray | None]:
    columns = tables.chunks.c
    found: dict[str, np.ndarray | None] = {}
    for start in range(0, len(chunk_ids), 5000):
        query = select(columns.id, columns.embedding).where(columns.id.in_(chunk_ids[start : start + 5000]))
        found.update((row.id, _unit(row.embedding)) for row in c.execute(query))
    return found
