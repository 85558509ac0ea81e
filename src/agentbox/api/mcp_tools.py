"""The MCP tools: run Python, list/read/write files under /mnt/data, get an image (api/mcp.py serves them).

Each call resolves its container first (`Workspace.resolve`), then calls the same services /v1 does:
app.state.execs (ExecService) to run code and app.state.containers (ContainerService) for files.
Every result names its container, in the text a model reads and in `structuredContent`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import io
import logging
import mimetypes
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    ToolAnnotations,
)
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import Field

from agentbox.api import mcp_text
from agentbox.engine.containers import DATA_DIR, EXPIRED, ContainerService, data_name
from agentbox.engine.execs import ExecService
from agentbox.errors import AgentboxError
from agentbox.store.records import ContainerFileRecord

SESSION_HEADER = "mcp-session-id"

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

ContainerArg = Annotated[
    str | None,
    Field(
        description="The container to use, as returned in an earlier result (cntr_…). Omit it to use "
        "this MCP session's container; a client without an MCP session gets a new container.",
    ),
]
PathArg = Annotated[str, Field(description="A file under /mnt/data: '/mnt/data/name' or just 'name'.")]


@dataclass(frozen=True, slots=True)
class Target:
    container_id: str
    note: str | None
    """Said to the caller when the container is new, and why (it may replace an expired one)."""


class Workspace:
    """Which container a call uses: one per MCP session, made on the first call that needs it.

    A session's container is found by name in the store (a hash of the session id, which itself is
    never shown), so nothing here outlives the store or grows with the number of sessions.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def containers(self) -> ContainerService:
        service: ContainerService = self._app.state.containers
        return service

    @property
    def execs(self) -> ExecService:
        service: ExecService = self._app.state.execs
        return service

    async def resolve(self, ctx: Context, container_id: str | None) -> Target:
        if container_id:
            record = await self.containers.get(container_id)
            if record.status != EXPIRED:
                return Target(record.id, None)
            return await self._fresh("mcp", f"{container_id} had expired")
        session = _session_id(ctx)
        if session is None:
            return await self._fresh("mcp", None)
        name = "mcp-session-" + hashlib.sha256(session.encode()).hexdigest()[:16]
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:  # two first calls of one session must not make two containers
            page = await self.containers.list_containers(limit=1, name=name)
            if page.items and page.items[0].status != EXPIRED:
                return Target(page.items[0].id, None)
            expired = f"this session's container {page.items[0].id} had expired" if page.items else None
            return await self._fresh(name, expired)

    async def _fresh(self, name: str, expired: str | None) -> Target:
        record = await self.containers.create(name)
        if expired is None:
            return Target(record.id, "a new container")
        return Target(record.id, f"a new container: {expired} (its variables and files are gone)")

    async def file(self, container_id: str, path: str) -> ContainerFileRecord:
        record = await self.containers.file_for_path(container_id, path)
        if record is None:
            where = DATA_DIR + data_name(path)
            raise ToolError(f"No file {where} in container {container_id}; list_files shows what is there.")
        return record

    async def read(self, record: ContainerFileRecord, limit: int) -> bytes:
        """The file's bytes, at most `limit` of them."""
        path = await self.containers.file_content(record.container_id, record.id)

        def head() -> bytes:
            with path.open("rb") as f:
                return f.read(limit)

        return await asyncio.to_thread(head)


def _session_id(ctx: Context) -> str | None:
    """The caller's MCP session, on the handshake protocol only: there the transport has checked the
    header names this very session; a stateless request's header is unchecked, so it is ignored."""
    if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS or ctx.headers is None:
        return None
    return ctx.headers.get(SESSION_HEADER) or None


def _result(
    target: Target, blocks: list[ContentBlock], data: dict[str, Any], *, error: bool = False
) -> CallToolResult:
    footer = f"container_id: {target.container_id}" + (f" ({target.note})" if target.note else "")
    return CallToolResult(
        content=[*blocks, TextContent(type="text", text=footer)],
        structured_content={"container_id": target.container_id, **data},
        is_error=error,
    )


def build_server(app: FastAPI) -> MCPServer:
    """The MCP server and its tools, working on the app's services."""
    with _root_logging_kept():  # MCPServer() calls logging.basicConfig; the CLI configures logging
        server: MCPServer = MCPServer("agentbox", instructions=mcp_text.INSTRUCTIONS, version="0.1.0")
    space = Workspace(app)

    async def run_python(
        code: Annotated[str, Field(description="Python source to run, like one Jupyter cell.")],
        ctx: Context,
        timeout: Annotated[
            float | None,
            Field(
                gt=0,
                le=3600,
                description="Seconds before the cell is interrupted (default: the server's, 60).",
            ),
        ] = None,
        container_id: ContainerArg = None,
    ) -> CallToolResult:
        target = await space.resolve(ctx, container_id)
        written = 0

        async def progress(_stream: str, text: str) -> None:
            """Live output as progress notifications (sent only if the client asked for progress)."""
            nonlocal written
            written += len(text)
            try:
                await ctx.report_progress(written, message=text)
            except Exception:  # a client gone mid-cell must not break the cell's own bookkeeping
                log.debug("progress for %s not delivered", target.container_id, exc_info=True)

        result = await space.execs.run(target.container_id, code, timeout_s=timeout, on_output=progress)
        blocks: list[ContentBlock] = [TextContent(type="text", text=mcp_text.exec_text(result))]
        for image in result.images:
            if image.bytes > mcp_text.BINARY_LIMIT:
                blocks.append(TextContent(type="text", text=mcp_text.too_big(image)))
                continue
            data = await space.read(image, mcp_text.BINARY_LIMIT)
            mime = mcp_text.image_type(data, image.path) or "image/png"
            blocks.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
        return _result(target, blocks, mcp_text.exec_data(result), error=result.status != "ok")

    async def list_files(ctx: Context, container_id: ContainerArg = None) -> CallToolResult:
        target = await space.resolve(ctx, container_id)
        files: list[ContainerFileRecord] = []
        after: str | None = None
        while True:
            page = await space.containers.list_files(target.container_id, limit=100, order="asc", after=after)
            files += page.items
            if not page.has_more or not page.items:
                break
            after = page.items[-1].id
        lines = [f"{f.path}\t{f.bytes} bytes\t{f.id}" for f in files] or [f"No files under {DATA_DIR}."]
        data = {"files": [mcp_text.file_data(f) for f in files]}
        return _result(target, [TextContent(type="text", text="\n".join(lines))], data)

    async def read_file(path: PathArg, ctx: Context, container_id: ContainerArg = None) -> CallToolResult:
        target = await space.resolve(ctx, container_id)
        record = await space.file(target.container_id, path)
        data = await space.read(record, max(mcp_text.BINARY_LIMIT, mcp_text.TEXT_LIMIT + 1))
        info = mcp_text.file_data(record)
        text = mcp_text.as_text(data)
        if text is not None:
            if record.bytes > mcp_text.TEXT_LIMIT:
                text += mcp_text.truncated(record.bytes)
            return _result(target, [TextContent(type="text", text=text)], {**info, "encoding": "text"})
        if record.bytes > mcp_text.BINARY_LIMIT:
            raise ToolError(mcp_text.too_big(record))
        mime = mimetypes.guess_type(record.path)[0] or "application/octet-stream"
        blob = BlobResourceContents(
            uri=f"file://{record.path}", mime_type=mime, blob=base64.b64encode(data).decode()
        )
        note = (
            f"{record.path} is binary ({mime}, {record.bytes} bytes); its bytes are in the embedded resource."
        )
        return _result(
            target,
            [TextContent(type="text", text=note), EmbeddedResource(type="resource", resource=blob)],
            {**info, "encoding": "base64", "mime_type": mime},
        )

    async def write_file(
        path: PathArg,
        content: Annotated[
            str, Field(description="The file's content: text, or base64 if encoding is 'base64'.")
        ],
        ctx: Context,
        encoding: Annotated[
            Literal["text", "base64"], Field(description="'text' (written as UTF-8) or 'base64' (binary).")
        ] = "text",
        container_id: ContainerArg = None,
    ) -> CallToolResult:
        name = data_name(path)
        if "/" in name:
            raise ToolError(f"write_file writes directly under {DATA_DIR}; for {path} use run_python.")
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
        except ValueError as exc:
            raise ToolError(f"content is not valid base64: {exc}") from exc
        target = await space.resolve(ctx, container_id)
        record = await space.containers.add_upload(target.container_id, name, io.BytesIO(data))
        text = f"Wrote {record.path} ({record.bytes} bytes, {record.id})."
        return _result(target, [TextContent(type="text", text=text)], mcp_text.file_data(record))

    async def get_image(path: PathArg, ctx: Context, container_id: ContainerArg = None) -> CallToolResult:
        target = await space.resolve(ctx, container_id)
        record = await space.file(target.container_id, path)
        if record.bytes > mcp_text.BINARY_LIMIT:
            raise ToolError(mcp_text.too_big(record))
        data = await space.read(record, mcp_text.BINARY_LIMIT)
        mime = mcp_text.image_type(data, record.path)
        if mime is None:
            raise ToolError(
                f"{record.path} is not a PNG, JPEG, GIF, WebP or SVG image; read_file returns it."
            )
        image = ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime)
        return _result(target, [image], {**mcp_text.file_data(record), "mime_type": mime})

    writes = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    for tool, hints in (
        (run_python, writes),
        (list_files, reads),
        (read_file, reads),
        (write_file, ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)),
        (get_image, reads),
    ):
        server.add_tool(
            _errors_as_tool_errors(tool),
            name=tool.__name__,
            description=mcp_text.DESCRIPTIONS[tool.__name__],
            annotations=hints,
            structured_output=False,
        )
    return server


def _errors_as_tool_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """agentbox's own errors (an unknown container, a bad name …) reach the caller as tool errors
    with their message; anything else stays an unexpected error, which the SDK logs and hides."""

    @functools.wraps(tool)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except AgentboxError as exc:
            raise ToolError(exc.message) from exc

    return call


@contextlib.contextmanager
def _root_logging_kept() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
