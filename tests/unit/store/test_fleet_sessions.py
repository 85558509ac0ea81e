"""The fleet sessions table on SQLite and on a real PostgreSQL: placements that racing replicas agree
on, conditional failover, the key's settings and checkpoints."""

from __future__ import annotations

import asyncio

import pytest

from agentbox.store.database import Store
from agentbox.store.fleet_sessions import FleetSessions


@pytest.fixture
def sessions(store: Store) -> FleetSessions:
    return FleetSessions(store)


def test_the_first_placement_wins(sessions: FleetSessions) -> None:
    first = asyncio.run(sessions.place("key_1", "node_a"))
    second = asyncio.run(sessions.place("key_1", "node_b"))
    assert first.node == second.node == "node_a"
    assert (first.cells, first.memory_mb, first.idle_s, first.checkpoint_bytes) == (0, None, None, None)
    assert asyncio.run(sessions.get("key_1")) == second
    assert asyncio.run(sessions.get("key_2")) is None


def test_a_configured_key_keeps_its_settings_when_placed(sessions: FleetSessions) -> None:
    asyncio.run(sessions.configure("key_1", 4096, 600.0))
    configured = asyncio.run(sessions.get("key_1"))
    assert configured is not None
    assert (configured.node, configured.memory_mb, configured.idle_s) == ("", 4096, 600.0)
    placed = asyncio.run(sessions.place("key_1", "node_a"))
    assert (placed.node, placed.memory_mb, placed.idle_s) == ("node_a", 4096, 600.0)
    # Configuring a placed key changes its settings and leaves it where it is.
    asyncio.run(sessions.configure("key_1", None, 30.5))
    reconfigured = asyncio.run(sessions.get("key_1"))
    assert reconfigured is not None
    assert (reconfigured.node, reconfigured.memory_mb, reconfigured.idle_s) == ("node_a", None, 30.5)


def test_a_move_needs_the_node_the_row_still_names(sessions: FleetSessions) -> None:
    asyncio.run(sessions.place("key_1", "node_a"))
    assert asyncio.run(sessions.move("key_1", "node_a", "node_b", "node_a stopped")) is True
    # A second replica that saw node_a die too lost the race: its old_node is stale.
    assert asyncio.run(sessions.move("key_1", "node_a", "node_c", "node_a stopped")) is False
    assert asyncio.run(sessions.move("absent", "node_a", "node_c", "node_a stopped")) is False
    moved = asyncio.run(sessions.get("key_1"))
    assert moved is not None and (moved.node, moved.restore_reason) == ("node_b", "node_a stopped")


def test_the_restore_reason_stays_until_a_cell_ran_on_the_new_node(sessions: FleetSessions) -> None:
    asyncio.run(sessions.place("key_1", "node_a"))
    asyncio.run(sessions.move("key_1", "node_a", "node_b", "node_a stopped"))
    asyncio.run(sessions.restored("key_1", "node_a"))  # a late word from the old node changes nothing
    row = asyncio.run(sessions.get("key_1"))
    assert row is not None and row.restore_reason == "node_a stopped"
    asyncio.run(sessions.restored("key_1", "node_b"))
    row = asyncio.run(sessions.get("key_1"))
    assert row is not None and (row.node, row.restore_reason) == ("node_b", None)


def test_checkpoints_count_cells_and_keep_the_note(sessions: FleetSessions) -> None:
    asyncio.run(sessions.place("key_1", "node_a"))
    asyncio.run(sessions.checkpointed("key_1", 3 * 2**30, None))  # past 32 bits: BIGINT
    asyncio.run(sessions.checkpointed("key_1", 10, None))
    row = asyncio.run(sessions.get("key_1"))
    assert row is not None and (row.cells, row.checkpoint_bytes, row.checkpoint_note) == (2, 10, None)
    asyncio.run(sessions.checkpointed("key_1", None, "/mnt/data is over 1 GiB"))
    row = asyncio.run(sessions.get("key_1"))
    assert row is not None
    assert (row.cells, row.checkpoint_bytes, row.checkpoint_note) == (3, None, "/mnt/data is over 1 GiB")
    # A key removed while its cell ran does not come back.
    asyncio.run(sessions.checkpointed("gone", 1, None))
    assert asyncio.run(sessions.get("gone")) is None


def test_remove(sessions: FleetSessions) -> None:
    asyncio.run(sessions.place("key_1", "node_a"))
    asyncio.run(sessions.remove("key_1"))
    asyncio.run(sessions.remove("key_1"))  # already gone: fine
    assert asyncio.run(sessions.get("key_1")) is None
    assert asyncio.run(sessions.place("key_1", "node_b")).node == "node_b"


@pytest.mark.parametrize("configured", [False, True], ids=["new", "configured"])
def test_of_many_racing_placements_one_wins(sessions: FleetSessions, configured: bool) -> None:
    if configured:
        asyncio.run(sessions.configure("key_1", 1024, None))

    async def race() -> list[str]:
        placed = await asyncio.gather(*(sessions.place("key_1", f"node_{i}") for i in range(20)))
        return [row.node for row in placed]

    nodes = asyncio.run(race())
    assert len(set(nodes)) == 1 and nodes[0].startswith("node_")
    stored = asyncio.run(sessions.get("key_1"))
    assert stored is not None and stored.node == nodes[0]
    assert stored.memory_mb == (1024 if configured else None)
