"""One file_search query over vector stores: attribute filters, then full text and (with an embeddings
endpoint) dense ranking, fused by reciprocal rank, thresholded, cut to max_num_results.

Scores are in [0, 1], higher is better:
- one ranking alone: full text is BM25 relative to the best hit (the best is 1.0); dense is the
  cosine similarity, negative ones counted as 0;
- both: the fused RRF score over the best possible one (first in both rankings is 1.0; first in one
  and missing from the other is 0.5).

If the embeddings endpoint fails, the search goes on with full text alone and logs why.
The caller resolves which files may be searched and their names and attributes; nothing here speaks HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from agentbox.errors import ModelError
from agentbox.retrieval import filters as attribute_filters
from agentbox.retrieval import index
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.fusion import best_possible, reciprocal_rank_fusion
from agentbox.retrieval.results import SearchRequest, SearchResult
from agentbox.store.database import Store

log = logging.getLogger(__name__)

RRF_K = 60
MIN_POOL = 50
"""Each ranking offers at least this many candidates to the fusion (more when more are asked for)."""


async def search(
    store: Store,
    embedder: Embedder | None,
    request: SearchRequest,
    file_names: Mapping[str, str],
    attributes: Mapping[str, Mapping[str, Any]],
    allowed_file_ids: Collection[str] | None = None,
) -> list[SearchResult]:
    """The best chunks of the request's vector stores for its query.

    file_names and attributes are by file id (attributes of the vector store file); a file with
    no entry has no attributes and an empty filename. allowed_file_ids (e.g. the completed files)
    limits the search; None lets every file of the stores in. Filters narrow the files before any
    ranking, so a filtered search still returns max_num_results when enough files pass.
    """
    if request.max_num_results <= 0 or not request.vector_store_ids:
        return []
    files = _searchable(request.filters, file_names, attributes, allowed_file_ids)
    pool = max(MIN_POOL, 3 * request.max_num_results)
    store_ids = request.vector_store_ids
    rankings = [await index.full_text(store, store_ids, request.query, pool, files)]
    if embedder is not None and request.query.strip():
        vector = await _embed(embedder, request.query)
        if vector is not None:
            rankings.append(await index.dense(store, store_ids, vector, pool, files))
    scored = _scores(rankings)
    scored = [(chunk_id, s) for chunk_id, s in scored if s >= request.score_threshold]
    scored = scored[: request.max_num_results]
    chunks = await index.get_chunks(store, [chunk_id for chunk_id, _ in scored])
    results = []
    for chunk_id, score in scored:
        chunk = chunks.get(chunk_id)
        if chunk is None:  # removed between ranking and reading
            continue
        results.append(
            SearchResult(
                file_id=chunk.file_id,
                filename=file_names.get(chunk.file_id, ""),
                score=score,
                text=chunk.text,
                chunk_id=chunk.id,
                vector_store_id=chunk.vector_store_id,
                attributes=dict(attributes.get(chunk.file_id, {})),
            )
        )
    return results


def _searchable(
    filters: Mapping[str, Any] | None,
    file_names: Mapping[str, str],
    attributes: Mapping[str, Mapping[str, Any]],
    allowed: Collection[str] | None,
) -> set[str] | None:
    """The file ids a search may return, or None for every file of the stores."""
    if filters is None:
        return None if allowed is None else set(allowed)
    attribute_filters.validate(filters)
    candidates = set(allowed) if allowed is not None else set(file_names) | set(attributes)
    return {f for f in candidates if attribute_filters.matches(filters, attributes.get(f, {}))}


async def _embed(embedder: Embedder, query: str) -> list[float] | None:
    try:
        return (await embedder.embed([query]))[0]
    except ModelError as error:
        log.warning("file_search goes on with full text alone: %s", error.message)
        return None


def _scores(rankings: list[index.Ranking]) -> list[tuple[str, float]]:
    used = [r for r in rankings if r]
    if not used:
        return []
    if len(used) > 1:
        best = best_possible(len(used), RRF_K)
        fused = reciprocal_rank_fusion([[chunk_id for chunk_id, _ in r] for r in used], RRF_K)
        return [(chunk_id, min(1.0, s / best)) for chunk_id, s in fused]
    (ranking,) = used
    if ranking is rankings[0]:  # full text: BM25 relative to the best hit
        top = ranking[0][1]
        return [(chunk_id, s / top if top > 0 else 1.0) for chunk_id, s in ranking]
    return [(chunk_id, min(1.0, max(0.0, s))) for chunk_id, s in ranking]
