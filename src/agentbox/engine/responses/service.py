"""ResponsesService: create, run, stream, retrieve, cancel and delete responses on the shared loop.

A response's context is its conversation's items, or its previous_response_id chain (every earlier
response's input and output), then its own input. Code runs in a container: the one named by the
tool, else (auto) the container of the newest code_interpreter_call in context while it is alive,
else a new one. The run belongs to the engine's task group, never to the HTTP request.

    queued (background) ─► in_progress ─► completed | incomplete | failed
                                └─ cancel (background only) ─► cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbox.engine import agents, images, prompt, transitions
from agentbox.engine.containers import ContainerService
from agentbox.engine.conversations import ConversationService
from agentbox.engine.events import DONE, RunEvents
from agentbox.engine.file_types import check_code_interpreter_files
from agentbox.engine.loop import AgentLoop, RunFailed, Usage, code_tool_choice
from agentbox.engine.replicas import Replica
from agentbox.engine.responses import search_calls
from agentbox.engine.responses.items import (
    INCLUDABLE,
    Item,
    as_items,
    image_file_ids,
    last_container,
    newest_user,
    present,
    to_chat,
)
from agentbox.engine.responses.surface import ResponseLog, ResponseSurface
from agentbox.engine.runs import RunEngine
from agentbox.engine.surface import FileSearchSpec, Task
from agentbox.errors import Conflict, InvalidRequest, ModelError, NotFound
from agentbox.ids import new_id, now
from agentbox.sandbox import InputFile
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import RESPONSE_ACTIVE, ContainerRecord, ResponseRecord

log = logging.getLogger(__name__)

TOOL_TYPES = ("code_interpreter", "function", "file_search")
TERMINAL = ("completed", "incomplete", "failed", "cancelled")
CANCEL_ASKED = RESPONSE_ACTIVE[-1]
CANCEL_POLL_S = 0.2
RESTARTED = "The server restarted while this response was in progress."


@dataclass(slots=True)
class ResponseParams:
    """A create request after the API layer's validation; the engine resolves the rest."""

    model: str | None = None
    input: str | list[Any] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    include: list[str] = field(default_factory=list)
    previous_response_id: str | None = None
    conversation: str | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    text: dict[str, Any] | None = None
    truncation: str = "disabled"
    reasoning_effort: str | None = None
    agent_reference: dict[str, Any] | None = None
    user: str | None = None


@dataclass(slots=True)
class _Live:
    data: dict[str, Any]
    surface: ResponseSurface
    task: asyncio.Task[None] | None = None
    cancel_asked: bool = False


class ResponsesService:
    def __init__(
        self,
        store: Store,
        loop: AgentLoop,
        engine: RunEngine,
        events: RunEvents,
        containers: ContainerService,
        conversations: ConversationService,
        ttl_s: int,
        *,
        blobs: BlobStore,
        replica: Replica,
    ) -> None:
        self._store = store
        self._replica = replica
        self._blobs = blobs
        self._loop = loop
        self._engine = engine
        self.events = events
        self._containers = containers
        self._conversations = conversations
        self._ttl_s = ttl_s
        self._live: dict[str, _Live] = {}
        self._cancels: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take over what dead replicas left running; with peers, act on the cancels they take."""
        await self.recover()
        if self._replica.shared and self._cancels is None:
            self._cancels = asyncio.create_task(self._serve_cancels(), name="agentbox-response-cancels")

    async def aclose(self) -> None:
        if self._cancels is not None:
            self._cancels.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cancels
            self._cancels = None

    async def recover(self) -> None:
        """Responses running when their server stopped can't resume: fail them with a reason (one not
        to be stored is removed). Their output and conversation items were never stored: both are
        written only when a response ends."""
        for record in await self._replica.take_over(ResponseRecord, RESPONSE_ACTIVE):
            if not record.data.get("store", True):
                await self._store.remove(ResponseRecord, record.id)
                continue
            if record.status == CANCEL_ASKED:  # the client asked for the end it gets
                data = {**record.data, "status": "cancelled"}
                await self._store.change(ResponseRecord, record.id, status="cancelled", data=data)
                conversation = record.conversation_id
                transitions.note("responses", record.id, conversation, record.status, "cancelled", None)
                continue
            error = {"code": "server_error", "message": RESTARTED}
            data = {**record.data, "status": "failed", "error": error}
            await self._store.change(ResponseRecord, record.id, status="failed", data=data)
            reason = f"server_error: {RESTARTED}"
            transitions.note("responses", record.id, record.conversation_id, record.status, "failed", reason)

    # --- create -------------------------------------------------------------------------------
    async def create(self, params: ResponseParams) -> str:
        """Validate, resolve context and container, store the response and start it; its id."""
        _check_include(params.include)
        if params.previous_response_id and params.conversation:
            raise InvalidRequest(
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                code="mutually_exclusive_parameters",
            )
        if params.background and not params.store:
            raise InvalidRequest(
                "Background responses must be stored: do not set store to false.", param="store"
            )
        tool_choice = _tool_choice(params.tool_choice)
        response_format = _response_format(params.text)
        agent = await agents.resolve(self._store, params.agent_reference) if params.agent_reference else None
        definition: dict[str, Any] = agent.definition if agent is not None else {}
        model = params.model or definition.get("model")
        if not model:
            raise InvalidRequest("Missing required parameter: 'model'.", param="model")
        instructions = (
            params.instructions if params.instructions is not None else definition.get("instructions")
        )
        tools = params.tools or list(definition.get("tools") or [])
        _check_tools(tools)
        search = await search_calls.spec_of(self._store, tools, tool_choice)
        if params.conversation:
            await self._conversations.get(params.conversation)  # NotFound before anything is created
            context = await self._conversations.items(params.conversation)
        elif params.previous_response_id:
            context = await self._chain(params.previous_response_id)
        else:
            context = []
        input_items = as_items(params.input)
        if params.conversation:
            await self._conversations.ensure_new(input_items, "input")
        code_tool = next((t for t in tools if t.get("type") == "code_interpreter"), None)
        container = await self._container(code_tool, context, input_items) if code_tool else None
        files = await self._containers.use(container.id) if container else []

        history = [*context, *input_items]
        try:
            image_urls = await images.data_urls(
                self._store, self._blobs, image_file_ids(newest_user(history))
            )
        except RunFailed as exc:
            raise InvalidRequest(exc.message, code="invalid_image") from exc

        response_id = new_id("resp_")
        created = now()
        data = {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": "queued" if params.background else "in_progress",
            "background": params.background,
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "instructions": instructions,
            "max_output_tokens": params.max_output_tokens,
            "max_tool_calls": params.max_tool_calls,
            "model": model,
            "output": [],
            "parallel_tool_calls": params.parallel_tool_calls,
            "previous_response_id": params.previous_response_id,
            "conversation": {"id": params.conversation} if params.conversation else None,
            "reasoning": {"effort": params.reasoning_effort, "summary": None},
            "store": params.store,
            "temperature": params.temperature
            if params.temperature is not None
            else definition.get("temperature"),
            "text": params.text or {"format": {"type": "text"}},
            "tool_choice": params.tool_choice,
            "tools": [_echo_tool(t, container, search) for t in tools],
            "top_p": params.top_p if params.top_p is not None else definition.get("top_p"),
            "truncation": params.truncation,
            "usage": None,
            "user": params.user,
            "metadata": params.metadata,
        }
        if agent is not None:
            data["agent_reference"] = {
                "type": "agent_reference",
                "name": agent.name,
                "version": agent.version,
            }
        record = ResponseRecord(
            id=response_id,
            created_at=created,
            status=data["status"],
            data=data,
            input_items=input_items,
            previous_response_id=params.previous_response_id,
            conversation_id=params.conversation,
            owner=self._replica.id,
        )
        await self._store.add(record)
        log_ = ResponseLog(self.events, response_id, params.include)
        surface = ResponseSurface(
            log_,
            container.id if container else None,
            self._containers.collect,
            self._containers.file_for_path,
            search_calls.context_markers(history),
        )
        live = self._live[response_id] = _Live(data=data, surface=surface)
        task = Task(
            model=model,
            chat=to_chat(history, _system(instructions, files), image_urls),
            session_key=container.id if container else response_id,
            files=files,
            code_enabled=container is not None,
            functions=[_function(t) for t in tools if t.get("type") == "function"],
            tool_choice=tool_choice,
            temperature=data["temperature"],
            top_p=data["top_p"],
            max_completion_tokens=params.max_output_tokens,
            parallel_tool_calls=params.parallel_tool_calls if tools else None,
            max_tool_calls=params.max_tool_calls,
            response_format=response_format,
            reasoning_effort=params.reasoning_effort,
            truncate=params.truncation == "auto",
            file_search=search,
            search_calls_before=len(search_calls.searched(history)),
        )
        live.task = self._engine.spawn(self._run(record, live, task, params), f"response {response_id}")
        return response_id

    async def _chain(self, response_id: str) -> list[Item]:
        """Every item before a new response in a previous_response_id chain, oldest first."""
        chain: list[ResponseRecord] = []
        next_id: str | None = response_id
        while next_id:
            try:
                record = await self._store.get(ResponseRecord, next_id)
            except NotFound:
                if next_id == response_id:
                    raise NotFound(
                        f"Previous response with id '{response_id}' not found.", param="previous_response_id"
                    ) from None
                break  # an older link was deleted: the chain starts after it
            if record.status not in TERMINAL:
                raise InvalidRequest(
                    f"Previous response '{record.id}' is still {record.status}; wait for it to finish.",
                    param="previous_response_id",
                )
            chain.append(record)
            next_id = record.previous_response_id
        items: list[Item] = []
        for record in reversed(chain):
            items.extend(record.input_items)
            items.extend(record.data.get("output") or [])
        return items

    async def _container(
        self, tool: dict[str, Any], context: list[Item], input_items: list[Item]
    ) -> ContainerRecord:
        """The container the code runs in; files named by the tool or the input are added to it."""
        spec = tool.get("container")
        options = spec if isinstance(spec, dict) else {}
        named = list(options.get("file_ids") or [])
        await check_code_interpreter_files(self._store, named, "tools.container.file_ids")
        uploads = [*named, *_input_file_ids(input_items)]
        container: ContainerRecord | None
        if isinstance(spec, str) and spec != "auto":
            container = await self._containers.get(spec)
            if container.status == "expired":
                raise InvalidRequest("Container is expired.")
        else:
            container = await self._reusable(last_container([*context, *input_items]))
            if container is None:
                return await self._containers.create(
                    "auto", file_ids=uploads, memory_limit=options.get("memory_limit")
                )
        for file_id in dict.fromkeys(uploads):
            await self._containers.add_file_from(container.id, file_id)
        return container

    async def _reusable(self, container_id: str | None) -> ContainerRecord | None:
        """Auto mode's container from context, while it is alive."""
        if container_id is None:
            return None
        try:
            container = await self._containers.get(container_id)
        except NotFound:
            return None
        return container if container.status != "expired" else None

    # --- the run ------------------------------------------------------------------------------
    async def _run(self, record: ResponseRecord, live: _Live, task: Task, params: ResponseParams) -> None:
        log_ = live.surface.log
        usage = Usage()
        try:
            await log_.emit("response.created", response=self._view(live, log_.include))
            if params.background:
                await log_.emit("response.queued", response=self._view(live, log_.include))
            live.data["status"] = "in_progress"
            await log_.emit("response.in_progress", response=self._view(live, log_.include))
            # The container must not expire between the response's code steps, however long they take.
            busy = self._containers.busy(task.session_key) if task.code_enabled else contextlib.nullcontext()
            try:
                async with asyncio.timeout(self._ttl_s), busy:
                    outcome = await self._loop.converse(task, live.surface, usage)
            except TimeoutError:
                self._fail(live, "server_error", f"The response did not finish within {self._ttl_s} s.")
            except ModelError as exc:
                self._fail(live, exc.code or "server_error", exc.message)
            except RunFailed as exc:
                self._fail(live, exc.code or "server_error", exc.message)
            else:
                if outcome.incomplete_reason:
                    live.data["status"] = "incomplete"
                    reason = (
                        "max_output_tokens"
                        if outcome.incomplete_reason == "max_completion_tokens"
                        else "max_prompt_tokens"
                    )
                    live.data["incomplete_details"] = {"reason": reason}
                else:
                    live.data["status"] = "completed"
                    live.data["completed_at"] = now()
        except asyncio.CancelledError:
            live.data["status"] = "cancelled"
            self.events.observe(record.id, {"response": live.data})  # no event says it
            await self._finish(record, live, usage, params)
            await self.events.publish(record.id, DONE)  # a client following the stream sees it end
            raise
        except Exception:
            log.exception("response %s crashed", record.id)
            self._fail(live, "server_error", "agentbox hit an internal error; see the server log.")
        await self._finish(record, live, usage, params)
        terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}
        await log_.emit(
            terminal.get(live.data["status"], "response.failed"), response=self._view(live, log_.include)
        )
        await self.events.publish(record.id, DONE)

    def _fail(self, live: _Live, code: str, message: str) -> None:
        live.data["status"] = "failed"
        live.data["error"] = {"code": code, "message": message}
        live.surface.cut()

    async def _finish(
        self, record: ResponseRecord, live: _Live, usage: Usage, params: ResponseParams
    ) -> None:
        """Store the final object and extend the conversation; nothing of it may be lost to a cancel."""
        live.data["output"] = live.surface.output
        live.data["usage"] = {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }
        self._live.pop(record.id, None)
        try:
            if params.conversation and live.data["status"] != "cancelled":
                await self._conversations.add(
                    params.conversation, [*record.input_items, *live.surface.output]
                )
            if params.store:
                await self._store.change(
                    ResponseRecord, record.id, status=live.data["status"], data=live.data
                )
            else:
                await self._store.remove(ResponseRecord, record.id)
        except NotFound:
            pass  # deleted while it ran

    def _view(self, live: _Live, include: Sequence[str]) -> dict[str, Any]:
        return view({**live.data, "output": live.surface.output}, include)

    # --- the other operations ------------------------------------------------------------------
    async def result(self, response_id: str, include: Sequence[str]) -> dict[str, Any]:
        """The response once it has ended (also one that is not stored, which get() can't find)."""
        live = self._live.get(response_id)
        if live is None:
            return await self.get(response_id, include)
        if live.task is not None:
            await asyncio.wait({live.task})
        return view(live.data, include)

    async def get(self, response_id: str, include: Sequence[str] = ()) -> dict[str, Any]:
        _check_include(include)
        live = self._live.get(response_id)
        if live is not None:
            return self._view(live, include)
        record = await self._store.get(ResponseRecord, response_id)
        return view(record.data, include)

    async def input_items(self, response_id: str) -> list[Item]:
        record = await self._store.get(ResponseRecord, response_id)
        return record.input_items

    async def cancel(self, response_id: str) -> dict[str, Any]:
        record = await self._store.get(ResponseRecord, response_id)
        if not record.data.get("background"):
            raise InvalidRequest("Only responses created with background set to true can be cancelled.")
        live = self._live.get(response_id)
        if live is not None and live.task is not None:
            live.task.cancel()
            await asyncio.wait({live.task})
        elif record.owner not in (None, self._replica.id) and record.status in RESPONSE_ACTIVE:
            # Another replica runs it: ask through the database, and answer once it has ended.
            await self._store.change(ResponseRecord, record.id, status=CANCEL_ASKED)
            deadline = asyncio.get_running_loop().time() + 10
            while (await self._store.get(ResponseRecord, record.id)).status in RESPONSE_ACTIVE:
                if asyncio.get_running_loop().time() > deadline:
                    break  # answered as it stands; its replica cancels it all the same
                await asyncio.sleep(CANCEL_POLL_S)
        return await self.get(response_id)

    async def _serve_cancels(self) -> None:
        """Cancel this replica's responses whose cancel another replica took."""
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                mine = await self._store.all(ResponseRecord, status=CANCEL_ASKED, owner=self._replica.id)
                for record in mine:
                    await self._serve_cancel(record)
            except Exception:  # the database may be away for a moment: try again next time
                log.exception("serving other replicas' cancels of this replica's responses failed")

    async def _serve_cancel(self, record: ResponseRecord) -> None:
        live = self._live.get(record.id)
        if live is None or live.task is None:  # it ended meanwhile: the status it ended with stays
            await self._store.change(ResponseRecord, record.id, status=record.data["status"])
        elif not live.cancel_asked:  # once: a second cancel would cut short its own ending
            live.cancel_asked = True
            live.task.cancel()

    async def delete(self, response_id: str) -> None:
        await self._store.get(ResponseRecord, response_id)
        live = self._live.get(response_id)
        if live is not None and live.task is not None:
            live.task.cancel()
            await asyncio.wait({live.task})
        await self._store.remove(ResponseRecord, response_id)

    async def stream_position(self, response_id: str, starting_after: int | None) -> int:
        """Where a replay starts in the event log; Conflict when the log is gone."""
        if await self.events.position(response_id) == 0:
            raise Conflict(
                f"The event stream of response '{response_id}' is no longer kept; "
                "retrieve it without stream.",
                param="stream",
            )
        return 0 if starting_after is None else starting_after + 1


def view(data: dict[str, Any], include: Sequence[str]) -> dict[str, Any]:
    return {**data, "output": [present(item, include) for item in data.get("output") or []]}


def _check_include(include: Sequence[str]) -> None:
    for value in include:
        if value not in INCLUDABLE:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: {', '.join(repr(v) for v in INCLUDABLE)}.",
                param="include",
                code="invalid_value",
            )


def _check_tools(tools: Sequence[dict[str, Any]]) -> None:
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind not in TOOL_TYPES:
            raise InvalidRequest(
                f"agentbox does not run the tool type {kind!r}; it runs code_interpreter, file_search "
                "and function tools.",
                param=f"tools[{index}].type",
                code="unsupported_tool",
            )
        if kind == "function" and not isinstance(tool.get("name"), str):
            raise InvalidRequest("A function tool needs its name.", param=f"tools[{index}].name")


def _echo_tool(
    tool: dict[str, Any], container: ContainerRecord | None, search: FileSearchSpec | None
) -> dict[str, Any]:
    if tool.get("type") == "file_search" and search is not None:
        return search_calls.echo(tool, search)
    if tool.get("type") != "code_interpreter":
        return tool
    spec = tool.get("container")
    if isinstance(spec, str) and spec != "auto":
        return tool
    return {**tool, "container": spec if isinstance(spec, dict) else {"type": "auto"}}


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    function = {
        "name": tool["name"],
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return function


def _tool_choice(choice: Any) -> Any:
    """Responses' tool_choice in chat-completions terms."""
    if choice in (None, "auto"):
        return None
    if choice in ("none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "code_interpreter":
            return code_tool_choice()
        if choice.get("type") == "file_search":
            return search_calls.tool_choice()
        if choice.get("type") == "function" and choice.get("name"):
            return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(f"Unsupported tool_choice {choice!r}.", param="tool_choice")


def _response_format(text: dict[str, Any] | None) -> Any:
    """`text.format` as chat completions' response_format: JSON mode and json_schema reach the model."""
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    return None


def _system(instructions: str | None, files: Sequence[InputFile]) -> str:
    return prompt.system_prompt(instructions or "", None, [f.name for f in files])


def _input_file_ids(items: Sequence[Item]) -> list[str]:
    """Files attached to input messages: OpenAI puts every file of the input in the container."""
    return [
        str(part["file_id"])
        for item in items
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "input_file" and part.get("file_id")
    ]
