"""The vector stores an Assistants run searches: the assistant's, the thread's, and the thread's
automatic store of its messages' file_search attachments; and the wait for their files' ingestion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from agentbox.engine.surface import DEFAULT_MAX_RESULTS, FileSearchSpec, Searcher
from agentbox.errors import InvalidRequest, NotFound
from agentbox.store.database import Store
from agentbox.store.records import (
    AssistantRecord,
    MessageRecord,
    ThreadRecord,
    VectorStoreRecord,
)

INGESTION_WAIT_S = 60.0
"""How long a run waits for its stores' files still being ingested (OpenAI's runs wait for them
too); past it the run searches what is there."""


class VectorStores(Searcher, Protocol):
    """What the Assistants side needs of the vector store service (engine/vector_stores.py)."""

    async def create(
        self,
        name: Any = None,
        file_ids: Any = None,
        expires_after: Any = None,
        chunking_strategy: Any = None,
        metadata: Any = None,
        thread_id: Any = None,
    ) -> VectorStoreRecord: ...

    async def thread_store(self, thread_id: str, file_ids: list[str]) -> str:
        """The thread's automatic store (made once, 7 days' expiry after last activity), with
        `file_ids` attached (files already in it are left as they are)."""
        ...

    async def wait_ready(self, store_ids: Sequence[str], timeout_s: float) -> None:
        """Return once none of the stores' files is still being ingested, or after timeout_s."""
        ...

    async def file_ids(self, store_id: str) -> list[str]:
        """The store's files the code interpreter gets in /mnt/data (its vector_store_ids)."""
        ...


def for_file_search(attachment: Mapping[str, Any]) -> bool:
    return any(tool.get("type") == "file_search" for tool in attachment.get("tools") or ())


def attached_for_search(messages: Iterable[MessageRecord]) -> list[str]:
    """The file ids the messages attach for the file_search tool, in order, once each."""
    found = (a["file_id"] for m in messages for a in m.attachments if for_file_search(a))
    return list(dict.fromkeys(found))


async def attach_to_thread(
    stores: VectorStores, store: Store, thread_id: str, messages: Sequence[MessageRecord]
) -> ThreadRecord | None:
    """The messages' file_search attachments go into the thread's automatic store, which the
    thread's tool_resources.file_search then lists; the thread as changed, or None if none."""
    file_ids = attached_for_search(messages)
    if not file_ids:
        return None
    store_id = await stores.thread_store(thread_id, file_ids)
    thread = await store.get(ThreadRecord, thread_id)
    if store_id in thread.search_store_ids:
        return thread
    return await store.change(ThreadRecord, thread_id, search_store_ids=[*thread.search_store_ids, store_id])


async def checked_store_ids(store: Store, store_ids: Sequence[str], param: str) -> list[str]:
    """Vector store ids a client names, each checked to exist (a typo fails now, not in a run)."""
    for store_id in store_ids:
        try:
            await store.get(VectorStoreRecord, store_id)
        except NotFound as exc:
            raise InvalidRequest(
                f"Invalid vector store id '{store_id}': no such vector store.", param=param
            ) from exc
    return list(dict.fromkeys(store_ids))


def file_search_tool(tools: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((t for t in tools if t.get("type") == "file_search"), None)


def search_spec(tools: Sequence[Mapping[str, Any]], store_ids: Sequence[str]) -> FileSearchSpec | None:
    """The run's file_search tool over its stores; None when it has no such tool, or no store."""
    tool = file_search_tool(tools)
    if tool is None or not store_ids:
        return None
    options = tool.get("file_search") or {}
    ranking = options.get("ranking_options") or {}
    return FileSearchSpec(
        vector_store_ids=list(dict.fromkeys(store_ids)),
        max_num_results=int(options.get("max_num_results") or DEFAULT_MAX_RESULTS),
        ranker=str(ranking.get("ranker") or "auto"),
        score_threshold=float(ranking.get("score_threshold") or 0.0),
    )


def ranking_options(spec: FileSearchSpec | None) -> dict[str, Any]:
    """A file_search step's ranking_options, as OpenAI shows them."""
    if spec is None:
        return {"ranker": "auto", "score_threshold": 0.0}
    return {"ranker": spec.ranker, "score_threshold": spec.score_threshold}


def run_store_ids(assistant: AssistantRecord, thread: ThreadRecord) -> list[str]:
    return list(dict.fromkeys([*assistant.search_store_ids, *thread.search_store_ids]))
