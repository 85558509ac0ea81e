"""What the database itself holds, on SQLite and on a real PostgreSQL: one active run per thread
(the index replicas rely on), migrations that several processes start at once, wide integers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from agentbox.store.database import Store, ThreadBusy
from agentbox.store.records import MessageRecord, RunRecord, RunStatus

MIGRATE = "import sys; from agentbox.store.database import Store; Store(sys.argv[1]).migrate()"


def _run(thread_id: str, status: RunStatus, created_at: int = 1) -> RunRecord:
    return RunRecord(
        id=f"run_{uuid.uuid4().hex[:12]}",
        created_at=created_at,
        thread_id=thread_id,
        assistant_id="asst_1",
        status=status,
        model="m",
        instructions="",
        tools=[],
        metadata={},
        options={},
    )


def _message(thread_id: str) -> MessageRecord:
    return MessageRecord(
        id=f"msg_{uuid.uuid4().hex[:12]}",
        created_at=1,
        thread_id=thread_id,
        role="user",
        content=[{"type": "text", "text": {"value": "more", "annotations": []}}],
        attachments=[],
        metadata={},
    )


def test_the_database_refuses_a_second_active_run_and_its_messages(store: Store) -> None:
    asyncio.run(store.add_run(_run("thread_1", RunStatus.COMPLETED)))
    first = _run("thread_1", RunStatus.QUEUED)
    asyncio.run(store.add_run(first))
    with pytest.raises(ThreadBusy):
        asyncio.run(store.add_run(_run("thread_1", RunStatus.QUEUED), [_message("thread_1")]))
    # All or nothing: the refused run's messages were not stored either.
    assert asyncio.run(store.all(MessageRecord, thread_id="thread_1")) == []
    asyncio.run(store.add_run(_run("thread_2", RunStatus.REQUIRES_ACTION)))  # another thread: fine
    asyncio.run(store.change(RunRecord, first.id, status=RunStatus.CANCELLED))
    asyncio.run(store.add_run(_run("thread_1", RunStatus.IN_PROGRESS), [_message("thread_1")]))
    assert len(asyncio.run(store.all(MessageRecord, thread_id="thread_1"))) == 1


def test_times_past_2038_and_sizes_past_2_gib_are_stored(store: Store) -> None:
    after_2038 = 2**31 + 86_400
    run = _run("thread_1", RunStatus.QUEUED, created_at=after_2038)
    asyncio.run(store.add_run(run))
    assert asyncio.run(store.get(RunRecord, run.id)).created_at == after_2038


def test_migrations_started_at_once_by_three_processes(database: str) -> None:
    migrations = [subprocess.Popen([sys.executable, "-c", MIGRATE, database]) for _ in range(3)]
    assert [process.wait(timeout=120) for process in migrations] == [0, 0, 0]
    store = Store(database)
    try:
        asyncio.run(store.add_run(_run("thread_1", RunStatus.QUEUED)))  # the schema is whole
    finally:
        store.close()
