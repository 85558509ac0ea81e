"""Foundry agents (azure-ai-projects 2.x): named, immutable, numbered versions of a prompt definition.

An agent is the set of versions sharing a name; it exists while it has one. A version's id is
"name:version" and versions count up from "1". A response that names an agent
(`agent_reference`, or `agent` in 2.0.0b1-b3) runs with the model, instructions and tools of
the version it names, or of the newest when it names none.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import now
from agentbox.store.database import Store
from agentbox.store.records import AgentVersionRecord, Json

NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
NAME_RULE = "Agent names are 1 to 63 letters, digits and hyphens, and start and end with a letter or digit."

# Numbering reads the newest version and writes the next: one creation at a time per process.
_numbering = asyncio.Lock()


def version_id(name: str, version: str) -> str:
    return f"{name}:{version}"


def check_name(name: str, param: str = "agent_name") -> str:
    if not NAME.match(name):
        raise InvalidRequest(f"Invalid agent name '{name}'. {NAME_RULE}", param=param)
    return name


async def versions(store: Store, name: str) -> list[AgentVersionRecord]:
    """Every version of the agent, oldest first; NotFound when there is none."""
    found = await store.all(AgentVersionRecord, name=name)
    if not found:
        raise NotFound(f"Agent '{name}' not found.")
    return found


async def latest(store: Store, name: str) -> AgentVersionRecord:
    return (await versions(store, name))[-1]


async def version(store: Store, name: str, number: str) -> AgentVersionRecord:
    try:
        return await store.get(AgentVersionRecord, version_id(name, number))
    except NotFound:
        raise NotFound(f"Agent '{name}' has no version '{number}'.") from None


async def create_version(
    store: Store, name: str, definition: Json, description: str | None, metadata: dict[str, str]
) -> AgentVersionRecord:
    """A new version of `name` (the agent's first when it does not exist yet)."""
    check_name(name)
    async with _numbering:
        existing = await store.all(AgentVersionRecord, name=name)
        number = str(max((int(v.version) for v in existing), default=0) + 1)
        record = AgentVersionRecord(
            id=version_id(name, number),
            created_at=now(),
            name=name,
            version=number,
            definition=definition,
            description=description,
            metadata=metadata,
        )
        return await store.add(record)


async def resolve(store: Store, reference: Any, param: str = "agent_reference") -> AgentVersionRecord:
    """The agent version a response names: {"type": "agent_reference", "name", "version"?}.

    Its `definition` is the prompt definition as created: "model", "instructions", "tools"
    (code_interpreter with `container` auto or an id, function tools in the Responses shape) and
    optionally "temperature", "top_p", "tool_choice", "text".
    """
    if not isinstance(reference, dict):
        raise InvalidRequest(f"'{param}' must be an object with the agent's 'name'.", param=param)
    kind = reference.get("type", "agent_reference")
    if kind != "agent_reference":
        raise InvalidRequest(
            f"Invalid value for '{param}.type': expected 'agent_reference'.", param=f"{param}.type"
        )
    name = reference.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"Missing required parameter: '{param}.name'.", param=f"{param}.name")
    number = reference.get("version")
    if number is not None and (not isinstance(number, str | int) or isinstance(number, bool)):
        raise InvalidRequest(f"'{param}.version' must be a string.", param=f"{param}.version")
    try:
        if number is None or number == "":
            return await latest(store, name)
        return await version(store, name, str(number))
    except NotFound as exc:
        raise NotFound(exc.message, param=param) from None
