"""The MCP server at /mcp: agentbox's sandbox as Model Context Protocol tools (docs/mcp.md).

Built with the official `mcp` SDK (`MCPServer` + its Streamable HTTP session manager); the tools
themselves are in api/mcp_tools.py. One session manager serves both protocol generations:

- handshake clients (protocol ≤ 2025-11-25: desktop apps, IDEs, `mcp-remote`) `initialize` and get
  an `Mcp-Session-Id`; each such session gets one container, made on its first tool call;
- stateless clients (protocol 2026-07-28, the SDK's default `Client`) send self-contained
  requests with no session: each tool result names its container, and the optional
  `container_id` argument carries it into the next call; without it a call gets a new container.

Every request must carry an API key (or, when the token route is on, an access token) exactly as
/v1 does: `deps.require_key` decides, and api/errors.py turns a refusal into OpenAI's 401 body.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agentbox.api.deps import require_key
from agentbox.api.mcp_tools import build_server

PATH = "/mcp"
MAX_REQUEST_BYTES = 64 << 20
"""write_file carries a file as base64 in the JSON body; larger files go to POST …/files."""


class _Authenticated:
    """Refuse a request without a valid key before the MCP transport sees it.

    The refusal is raised, not answered here, so it reaches the app's one error table
    (api/errors.py) like a /v1 route's would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            require_key(request, request.headers.get("authorization"), request.headers.get("api-key"))
        await self._app(scope, receive, send)


def mount(app: FastAPI) -> None:
    """Serve MCP at /mcp, its session manager running inside the app's lifespan."""
    server = build_server(app)
    # The SDK logs each MCP session id at INFO; a session id is as good as a handle on its container.
    logging.getLogger("mcp").setLevel(logging.WARNING)
    # Builds the SDK's session manager (the Starlette app it returns is not used: agentbox's own
    # route, authentication and error handling stand in front of the manager instead).
    server.streamable_http_app(
        streamable_http_path=PATH,
        max_request_body_size=MAX_REQUEST_BYTES,
        # The SDK's DNS-rebinding guard checks Host/Origin against a list of loopback names; here
        # every request needs the API key, which a rebinding page cannot know, and a fixed host
        # list would refuse agentbox behind a proxy or on a LAN address.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    endpoint = _Authenticated(StreamableHTTPASGIApp(manager))
    app.router.routes.append(Route(PATH, endpoint=endpoint, include_in_schema=False))

    # The manager starts once the app's services are up and stops (ending every MCP session and
    # the tool calls in flight) before they close.
    app_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with app_lifespan(app) as state, manager.run():
            yield state

    app.router.lifespan_context = lifespan
