"""The Foundry flavour (azure-ai-projects 2.x, spec §5): agent versions under /api/projects/{project}/agents,
and the Responses generation's routers again under Foundry's OpenAI-client prefixes.

2.0.0 and later call the agent routes with `api-version=v1` and the OpenAI client at
`{endpoint}/openai/v1` without one; 2.0.0b1-b3 sent `api-version=2025-11-15-preview` to both,
the OpenAI client at `{endpoint}/openai`, and created agents with `POST /agents` and
`POST /agents/{name}` (both a new version here). The project in the path is not interpreted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentbox.api import wire
from agentbox.api.deps import StoreDep, require_key
from agentbox.api.listing import ListDep
from agentbox.api.schemas import Metadata, _check_metadata
from agentbox.engine import agents
from agentbox.engine.file_types import check_code_interpreter_file
from agentbox.engine.responses import search_calls
from agentbox.errors import InvalidRequest, NotFound
from agentbox.store.database import Store
from agentbox.store.records import AgentVersionRecord, FileRecord, Page

PROJECT = "/api/projects/{project}"
AGENT_API_VERSIONS = ("v1", "2025-11-15-preview")
PREVIEW = "2025-11-15-preview"


def api_version_check(*accepted: str) -> Callable[[str | None], None]:
    """A dependency refusing any `api-version` but these; a missing one means the newest."""

    def check(api_version: Annotated[str | None, Query(alias="api-version")] = None) -> None:
        if api_version is not None and api_version not in accepted:
            raise InvalidRequest(
                f"Unsupported api-version '{api_version}'. Supported versions: {', '.join(accepted)}.",
                param="api-version",
                code="unsupported_api_version",
            )

    return check


# -- request bodies ----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # what newer SDKs add is kept and shown back


class AutoContainer(_Body):
    type: Literal["auto"] = "auto"
    file_ids: list[str] = Field(default_factory=list, max_length=50)
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None


class CodeInterpreterTool(_Body):
    type: Literal["code_interpreter"]
    container: str | AutoContainer | None = None


class FunctionTool(_Body):
    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FileSearchTool(_Body):
    """Its stores, filters and ranking are checked as a response's tool is (search_calls.tool_spec)."""

    type: Literal["file_search"]
    vector_store_ids: list[str]


TOOLS: dict[str, type[_Body]] = {
    "code_interpreter": CodeInterpreterTool,
    "function": FunctionTool,
    "file_search": FileSearchTool,
}


class PromptDefinition(_Body):
    """Only prompt agents: hosted, workflow, external and voice agents run elsewhere."""

    kind: Literal["prompt"]
    model: str = Field(min_length=1)
    instructions: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list, max_length=128)
    """Checked one by one (`checked_tools`), so an error names the tool as the client wrote it."""
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)


class CreateAgentVersion(BaseModel):
    model_config = ConfigDict(extra="ignore")  # draft, blueprint_reference, digital_worker_type
    definition: PromptDefinition
    description: str | None = Field(None, max_length=512)
    metadata: Metadata | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class CreateAgent(CreateAgentVersion):
    """2.0.0b1-b3's `agents.create(name=…, definition=…)`."""

    name: str


# -- response objects (azure-ai-projects 2.10 models/_models.py) ---------------------------------


class AgentVersionObject(BaseModel):
    object: Literal["agent.version"] = "agent.version"
    id: str
    name: str
    version: str
    description: str | None
    created_at: int
    definition: dict[str, Any]
    metadata: dict[str, str]
    status: Literal["active"] = "active"


class AgentVersions(BaseModel):
    latest: AgentVersionObject


class AgentObject(BaseModel):
    object: Literal["agent"] = "agent"
    id: str
    name: str
    state: Literal["enabled"] = "enabled"
    configuration_state: Literal["enabled"] = "enabled"
    versions: AgentVersions


class AgentDeleted(BaseModel):
    object: Literal["agent.deleted"] = "agent.deleted"
    name: str
    deleted: bool = True


class AgentVersionDeleted(BaseModel):
    object: Literal["agent.version.deleted"] = "agent.version.deleted"
    name: str
    version: str
    deleted: bool = True


def version_object(record: AgentVersionRecord) -> AgentVersionObject:
    return AgentVersionObject(
        id=record.id,
        name=record.name,
        version=record.version,
        description=record.description,
        created_at=record.created_at,
        definition=record.definition,
        metadata=record.metadata,
    )


def agent_object(latest: AgentVersionRecord) -> AgentObject:
    return AgentObject(
        id=latest.name, name=latest.name, versions=AgentVersions(latest=version_object(latest))
    )


# -- routes --------------------------------------------------------------------------------------

router = APIRouter()


def checked_tools(tools: list[dict[str, Any]]) -> list[_Body]:
    checked = []
    for index, tool in enumerate(tools):
        where = f"definition.tools[{index}]"
        kind = tool.get("type")
        model = TOOLS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise InvalidRequest(
                f"agentbox does not run the tool type {kind!r}; it runs code_interpreter, file_search "
                "and function tools.",
                param=f"{where}.type",
                code="unsupported_tool",
            )
        try:
            checked.append(model.model_validate(tool))
        except ValidationError as exc:
            raise _tool_error(where, exc) from None
    return checked


def _tool_error(where: str, exc: ValidationError) -> InvalidRequest:
    """The problem the client meant: union members that failed early ('str', a class name) drop out."""

    def names(error: Any) -> list[str]:
        return [str(p) for p in error["loc"] if p != "str" and not str(p)[:1].isupper()]

    error = max(exc.errors(), key=lambda e: len(names(e)))
    param = ".".join([where, *names(error)])
    if error["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return InvalidRequest(f"Invalid value for '{param}': {error['msg']}.", param=param)


async def _create(store: Store, name: str, body: CreateAgentVersion) -> AgentVersionRecord:
    agents.check_name(name)
    tools = checked_tools(body.definition.tools)
    for index, tool in enumerate(tools):
        if isinstance(tool, FileSearchTool):
            await search_calls.tool_spec(store, tool.model_dump(), f"definition.tools[{index}]")
        if isinstance(tool, CodeInterpreterTool) and isinstance(tool.container, AutoContainer):
            param = f"definition.tools[{index}].container.file_ids"
            for file_id in tool.container.file_ids:
                try:
                    record = await store.get(FileRecord, file_id)
                except NotFound:
                    raise InvalidRequest(f"Invalid file id '{file_id}': no such file.", param=param) from None
                check_code_interpreter_file(record, param)
    definition = {
        **body.definition.model_dump(exclude_none=True),
        "tools": [tool.model_dump(exclude_none=True) for tool in tools],
    }
    return await agents.create_version(store, name, definition, body.description, body.metadata or {})


@router.post("/agents/{agent_name}/versions")
async def create_agent_version(
    store: StoreDep, agent_name: str, body: CreateAgentVersion
) -> AgentVersionObject:
    return version_object(await _create(store, agent_name, body))


@router.post("/agents")
async def create_agent(store: StoreDep, body: CreateAgent) -> AgentObject:
    agents.check_name(body.name, param="name")
    try:
        await agents.latest(store, body.name)
    except NotFound:
        return agent_object(await _create(store, body.name, body))
    raise InvalidRequest(
        f"Agent '{body.name}' already exists; create a new version of it instead.",
        param="name",
        code="agent_exists",
    )


@router.post("/agents/{agent_name}")
async def update_agent(store: StoreDep, agent_name: str, body: CreateAgentVersion) -> AgentObject:
    """2.0.0b1-b3's `agents.update`: a new version of an existing agent."""
    await agents.latest(store, agent_name)
    return agent_object(await _create(store, agent_name, body))


@router.get("/agents")
async def list_agents(
    store: StoreDep,
    page: ListDep,
    kind: Annotated[Literal["prompt", "hosted", "workflow", "external", "voice"] | None, Query()] = None,
) -> wire.ListObject[AgentObject]:
    newest: dict[str, AgentVersionRecord] = {}
    if kind in (None, "prompt"):  # agentbox keeps prompt agents only
        for record in await store.all(AgentVersionRecord):  # oldest first: agents in creation order,
            newest[record.name] = record  # each with its newest version
    found = _page_by_id(list(newest.values()), page.limit, page.order, page.after, page.before)
    return wire.list_object(found, agent_object)


@router.get("/agents/{agent_name}")
async def get_agent(store: StoreDep, agent_name: str) -> AgentObject:
    return agent_object(await agents.latest(store, agent_name))


@router.delete("/agents/{agent_name}")
async def delete_agent(store: StoreDep, agent_name: str) -> AgentDeleted:
    await agents.latest(store, agent_name)
    await store.remove_all(AgentVersionRecord, name=agent_name)
    return AgentDeleted(name=agent_name)


@router.get("/agents/{agent_name}/versions")
async def list_agent_versions(
    store: StoreDep, agent_name: str, page: ListDep
) -> wire.ListObject[AgentVersionObject]:
    await agents.latest(store, agent_name)
    found = await store.page(
        AgentVersionRecord,
        limit=page.limit,
        order=page.order,
        after=page.after,
        before=page.before,
        name=agent_name,
    )
    return wire.list_object(found, version_object)


@router.get("/agents/{agent_name}/versions/{agent_version}")
async def get_agent_version(store: StoreDep, agent_name: str, agent_version: str) -> AgentVersionObject:
    return version_object(await agents.version(store, agent_name, agent_version))


@router.delete("/agents/{agent_name}/versions/{agent_version}")
async def delete_agent_version(store: StoreDep, agent_name: str, agent_version: str) -> AgentVersionDeleted:
    record = await agents.version(store, agent_name, agent_version)
    await store.remove(AgentVersionRecord, record.id)
    return AgentVersionDeleted(name=agent_name, version=agent_version)


def _page_by_id(
    records: Sequence[AgentVersionRecord],
    limit: int,
    order: Literal["asc", "desc"],
    after: str | None,
    before: str | None,
) -> Page[AgentVersionRecord]:
    """Store.page's cursor rules over agents, whose id is their name (an agent is not one row)."""
    ordered = list(records) if order == "asc" else list(reversed(records))
    names = [r.name for r in ordered]
    start, stop = 0, len(ordered)
    for cursor, param in ((after, "after"), (before, "before")):
        if cursor is not None and cursor not in names:
            raise InvalidRequest(f"No agent found with id '{cursor}' for '{param}'.", param=param)
    if after is not None:
        start = names.index(after) + 1
    if before is not None:
        stop = names.index(before)
    window = ordered[start:stop]
    if before is not None and after is None:
        return Page(window[-limit:], len(window) > limit)
    return Page(window[:limit], len(window) > limit)


# -- mounting ------------------------------------------------------------------------------------


def mount(app: FastAPI, openai_routers: Iterable[APIRouter]) -> None:
    """The agent routes, and `openai_routers` under both OpenAI-client prefixes; none in the OpenAPI
    schema, which documents each operation once, under /v1 (as api/azure.py does)."""
    auth = Depends(require_key)  # first, so a stranger gets 401 before any 400
    app.include_router(
        router,
        prefix=PROJECT,
        dependencies=[auth, Depends(api_version_check(*AGENT_API_VERSIONS))],
        include_in_schema=False,
    )
    openai = APIRouter()
    for module_router in openai_routers:
        openai.include_router(module_router)
    for prefix, versions in ((f"{PROJECT}/openai/v1", ("v1", PREVIEW)), (f"{PROJECT}/openai", (PREVIEW,))):
        checks = [auth, Depends(api_version_check(*versions))]
        app.include_router(openai, prefix=prefix, dependencies=checks, include_in_schema=False)
