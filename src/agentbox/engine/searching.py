"""The file_search tool's calls: the model's queries, and the passages the searcher finds for them."""

from __future__ import annotations

import json
from typing import Any

from agentbox.engine import citations
from agentbox.engine.prompt import SEARCH_TOOL_NAME
from agentbox.engine.surface import FileSearchSpec, Searcher, SearchSink
from agentbox.errors import AgentboxError
from agentbox.llm.base import ToolCall
from agentbox.retrieval.results import SearchRequest, SearchResult

MAX_QUERIES = 5
"""Queries of one call that are searched; a model listing more gets the first ones."""


def queries_of(arguments: str) -> list[str] | str:
    """The call's queries ({"queries": [...]}, or a bare {"query": "..."} or raw text), or the
    problem the model is told when there are none."""
    again = (
        f'nothing was searched. Call {SEARCH_TOOL_NAME} again with the arguments {{"queries": ["<query>"]}}.'
    )
    if not arguments.lstrip().startswith("{"):
        text = arguments.strip()
        return [text] if text else f"Error: the call of {SEARCH_TOOL_NAME} had no query; {again}"
    try:
        parsed: Any = json.loads(arguments, strict=False)
    except json.JSONDecodeError as exc:
        return f"Error: the arguments of {SEARCH_TOOL_NAME} were not valid JSON ({exc.msg}); {again}"
    found: list[str] = []
    if isinstance(parsed, dict):
        listed = parsed.get("queries")
        if isinstance(listed, str):
            listed = [listed]
        if isinstance(listed, list):
            found.extend(q.strip() for q in listed if isinstance(q, str))
        single = parsed.get("query")
        if isinstance(single, str):
            found.append(single.strip())
    queries = list(dict.fromkeys(q for q in found if q))[:MAX_QUERIES]
    if not queries:
        return f"Error: the arguments of {SEARCH_TOOL_NAME} held no non-empty query; {again}"
    return queries


async def search(searcher: Searcher, spec: FileSearchSpec, queries: list[str]) -> list[SearchResult]:
    """Every query searched; the passages merged (a passage found twice keeps its best score) and the
    spec's max_num_results best kept, best first."""
    best: dict[str, SearchResult] = {}
    for query in queries:
        request = SearchRequest(
            vector_store_ids=spec.vector_store_ids,
            query=query,
            max_num_results=spec.max_num_results,
            filters=spec.filters,
            ranker=spec.ranker,
            score_threshold=spec.score_threshold,
        )
        for result in await searcher.search(request):
            seen = best.get(result.chunk_id)
            if seen is None or result.score > seen.score:
                best[result.chunk_id] = result
    ranked = sorted(best.values(), key=lambda r: r.score, reverse=True)
    return ranked[: spec.max_num_results]


async def run_call(
    searcher: Searcher,
    spec: FileSearchSpec,
    sink: SearchSink,
    call: ToolCall,
    queries: list[str],
    call_no: int,
) -> str:
    """One file_search call, its passages recorded by the surface's sink; the text the model reads.
    A store the searcher refuses (gone, expired) fails the call, and the model is told why."""
    await sink.searching(queries)
    try:
        results = await search(searcher, spec, queries)
    except AgentboxError as exc:
        problem = f"Error: the search failed: {exc.message}"
        await sink.reject(call, problem)
        return problem
    text, markers = citations.format_results(call_no, results, queries)
    await sink.finish(queries, results, markers)
    return text
