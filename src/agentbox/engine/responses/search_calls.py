"""Responses' file_search: the tool a request names, and the `file_search_call` items of its searches.

Per search call:  output_item.added → file_search_call.in_progress → file_search_call.searching →
                  file_search_call.completed → output_item.done
An item keeps its results always; `present` shows them only when the client asked for
`file_search_call.results`. A later response in the same conversation (or previous_response_id
chain) reads earlier calls back with their passages under the same markers, numbered in context
order, so what the model cited there still resolves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentbox.engine import citations
from agentbox.engine.citations import Markers
from agentbox.engine.prompt import SEARCH_TOOL_NAME
from agentbox.engine.surface import DEFAULT_MAX_RESULTS, FileSearchSpec
from agentbox.engine.vector_stores import is_expired
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.llm.base import ToolCall
from agentbox.retrieval import filters as attribute_filters
from agentbox.retrieval.results import SearchResult
from agentbox.store.database import Store
from agentbox.store.records import VectorStoreRecord

if TYPE_CHECKING:
    from agentbox.engine.responses.surface import ResponseSurface

Item = dict[str, Any]

RESULTS_INCLUDE = "file_search_call.results"
RANKERS = ("auto", "default-2024-11-15")
MAX_RESULTS = 50
_NOT_KEPT = "(the results of this search were not kept)"
_FAILED = "Error: the search failed."


async def spec_of(store: Store, tools: Sequence[Mapping[str, Any]], choice: Any) -> FileSearchSpec | None:
    """The request's file_search tool (one at most) over stores that exist; a tool_choice forcing
    it (already in chat-completions terms) needs it."""
    found = [(i, t) for i, t in enumerate(tools) if t.get("type") == "file_search"]
    if len(found) > 1:
        raise InvalidRequest("Give one file_search tool at most.", param=f"tools[{found[1][0]}]")
    if not found:
        if choice == tool_choice():
            raise InvalidRequest(
                "tool_choice names file_search, but the tools have no file_search tool.",
                param="tool_choice",
            )
        return None
    index, tool = found[0]
    return await tool_spec(store, tool, f"tools[{index}]")


def tool_choice() -> dict[str, Any]:
    """The chat-completions tool_choice that forces a search."""
    return {"type": "function", "function": {"name": SEARCH_TOOL_NAME}}


async def tool_spec(store: Store, tool: Mapping[str, Any], where: str) -> FileSearchSpec:
    """A file_search tool as the loop's FileSearchSpec; its stores must exist and be usable."""
    ids = tool.get("vector_store_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidRequest(
            "A file_search tool needs 'vector_store_ids': a list of vector store ids.",
            param=f"{where}.vector_store_ids",
        )
    if not ids:
        raise InvalidRequest(
            "A file_search tool needs at least one vector store id.", param=f"{where}.vector_store_ids"
        )
    for store_id in dict.fromkeys(ids):
        try:
            record = await store.get(VectorStoreRecord, store_id)
        except NotFound:
            # 400 like every other unknown id inside a request body (files, Assistants' stores).
            raise InvalidRequest(
                f"Invalid vector store id '{store_id}': no such vector store.",
                param=f"{where}.vector_store_ids",
            ) from None
        if is_expired(record, now()):
            raise InvalidRequest(
                f"Vector store '{store_id}' has expired; create a new one.",
                param=f"{where}.vector_store_ids",
            )
    count = tool.get("max_num_results")
    if count is not None and (
        isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RESULTS
    ):
        raise InvalidRequest(
            f"'max_num_results' must be an integer from 1 to {MAX_RESULTS}.", param=f"{where}.max_num_results"
        )
    options = tool.get("ranking_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidRequest("'ranking_options' must be an object.", param=f"{where}.ranking_options")
    ranker = options.get("ranker") or "auto"
    if ranker not in RANKERS:
        raise InvalidRequest(
            f"Invalid ranker {ranker!r}: use one of {', '.join(RANKERS)}.",
            param=f"{where}.ranking_options.ranker",
        )
    threshold = options.get("score_threshold")
    if threshold is None:
        threshold = 0.0
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidRequest(
            "'score_threshold' must be a number from 0 to 1.",
            param=f"{where}.ranking_options.score_threshold",
        )
    filters = tool.get("filters")
    if filters is not None:
        attribute_filters.validate(filters, f"{where}.filters")
    return FileSearchSpec(
        vector_store_ids=list(dict.fromkeys(ids)),
        max_num_results=count or DEFAULT_MAX_RESULTS,
        filters=filters,
        ranker=ranker,
        score_threshold=float(threshold),
    )


def echo(tool: Mapping[str, Any], spec: FileSearchSpec) -> Item:
    """The tool as the response shows it, defaults filled in."""
    options = dict(tool.get("ranking_options") or {})
    options.update(ranker=spec.ranker, score_threshold=spec.score_threshold)
    return {
        **tool,
        "vector_store_ids": spec.vector_store_ids,
        "filters": spec.filters,
        "max_num_results": spec.max_num_results,
        "ranking_options": options,
    }


def wire_results(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    return [
        {
            "attributes": dict(r.attributes),
            "file_id": r.file_id,
            "filename": r.filename,
            "score": r.score,
            "text": r.text,
        }
        for r in results
    ]


def input_item(entry: dict[str, Any], where: str) -> Item:
    """A file_search_call the client sends back (a previous response's output as input)."""
    if not isinstance(entry.get("id"), str) or not entry["id"]:
        raise InvalidRequest("A file_search_call item needs its id.", param=f"{where}.id")
    queries = entry.get("queries")
    if queries is None:
        queries = []
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise InvalidRequest("A file_search_call's queries must be strings.", param=f"{where}.queries")
    results = entry.get("results")
    if results is not None and not (
        isinstance(results, list)
        and all(isinstance(r, dict) and isinstance(r.get("text", ""), str) for r in results)
    ):
        raise InvalidRequest(
            "A file_search_call's results must be a list of objects.", param=f"{where}.results"
        )
    return {**entry, "queries": queries, "results": results, "status": entry.get("status") or "completed"}


def present(item: Item, include: Sequence[str]) -> Item:
    if RESULTS_INCLUDE in include:
        return item
    return {**item, "results": None}


def chat_turn(item: Item, call_no: int) -> tuple[dict[str, Any], str, Markers]:
    """A past search call as the model read it: its call, the tool result and that result's markers."""
    call = {
        "id": item["id"],
        "type": "function",
        "function": {
            "name": SEARCH_TOOL_NAME,
            "arguments": json.dumps({"queries": item.get("queries") or []}),
        },
    }
    raw = item.get("results")
    if item.get("status") == "failed":
        return call, _FAILED, {}
    if raw is None:
        return call, _NOT_KEPT, {}
    text, markers = citations.format_results(call_no, _results(raw), item.get("queries") or [])
    return call, text, markers


def searched(items: Sequence[Item]) -> list[Item]:
    """The search calls of a context the model read back, in order (each is numbered by its place)."""
    return [i for i in items if i.get("type") == "file_search_call" and i.get("status") != "incomplete"]


def context_markers(items: Sequence[Item]) -> Markers:
    markers: Markers = {}
    for call_no, item in enumerate(searched(items)):
        markers.update(chat_turn(item, call_no)[2])
    return markers


def _results(raw: Sequence[Mapping[str, Any]]) -> list[SearchResult]:
    found = []
    for entry in raw:
        score = entry.get("score")
        found.append(
            SearchResult(
                file_id=str(entry.get("file_id") or ""),
                filename=str(entry.get("filename") or ""),
                score=float(score) if isinstance(score, int | float) and math.isfinite(score) else 0.0,
                text=str(entry.get("text") or ""),
                chunk_id="",
                vector_store_id="",
                attributes=dict(entry.get("attributes") or {}),
            )
        )
    return found


class SearchCall:
    """One file_search call of a response, as its output item and events."""

    def __init__(self, surface: ResponseSurface, item: Item, index: int) -> None:
        self._surface = surface
        self._item = item
        self._index = index

    @classmethod
    async def start(cls, surface: ResponseSurface) -> SearchCall:
        item: Item = {
            "type": "file_search_call",
            "id": new_id("fs_"),
            "status": "in_progress",
            "queries": [],
            "results": None,
        }
        index = await surface.add(item)
        call = cls(surface, item, index)
        await call._emit("response.file_search_call.in_progress")
        return call

    async def arguments(self, piece: str) -> None:
        """Responses has no event for a search call's arguments: its queries come with `searching`."""

    async def searching(self, queries: list[str]) -> None:
        self._item.update(queries=list(queries), status="searching")
        await self._emit("response.file_search_call.searching")

    async def finish(self, queries: list[str], results: list[SearchResult], markers: Markers) -> None:
        self._item.update(queries=list(queries), results=wire_results(results), status="completed")
        self._surface.markers.update(markers)
        await self._emit("response.file_search_call.completed")
        await self._surface.done(self._index)

    async def reject(self, call: ToolCall, problem: str) -> None:
        """Malformed arguments: nothing was searched, the item ends incomplete (items.to_chat skips
        it). A search the searcher refused (a store gone or expired) ends failed."""
        self._item["status"] = "failed" if self._item["status"] == "searching" else "incomplete"
        await self._surface.done(self._index)

    async def _emit(self, kind: str) -> None:
        await self._surface.log.emit(kind, item_id=self._item["id"], output_index=self._index)
