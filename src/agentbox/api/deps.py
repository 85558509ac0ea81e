"""Small getters that hand route handlers the collaborators app.py hung on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from agentbox.access_tokens import TokenSigner
from agentbox.engine.containers import ContainerService
from agentbox.engine.conversations import ConversationService
from agentbox.engine.execs import ExecService
from agentbox.engine.responses.service import ResponsesService
from agentbox.engine.runs import RunEngine
from agentbox.errors import Unauthorized
from agentbox.fleet import Sandboxes
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


def get_engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


def get_sandbox(request: Request) -> Sandboxes:
    sandbox: Sandboxes = request.app.state.sandbox
    return sandbox


def get_conversations(request: Request) -> ConversationService:
    conversations: ConversationService = request.app.state.conversations
    return conversations


def get_responses(request: Request) -> ResponsesService:
    service: ResponsesService = request.app.state.responses
    return service


def get_containers(request: Request) -> ContainerService:
    containers: ContainerService = request.app.state.containers
    return containers


def get_execs(request: Request) -> ExecService:
    execs: ExecService = request.app.state.execs
    return execs


def require_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    api_key: Annotated[str | None, Header(alias="api-key")] = None,
) -> None:
    """Accept `Authorization: Bearer KEY` (OpenAI, Azure) or `api-key: KEY` (Azure OpenAI style).

    A bearer may also be an access token from the managed-identity route (api/tokens.py), when
    that route is enabled: it is how Azure credentials authenticate without an API key.
    """
    keys: frozenset[str] = request.app.state.api_keys
    offered = api_key
    if authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    if offered is None:
        raise Unauthorized(
            "You didn't provide an API key. Send 'Authorization: Bearer YOUR_KEY' or 'api-key: YOUR_KEY'."
        )
    if offered in keys:
        return
    signer: TokenSigner | None = getattr(request.app.state, "token_signer", None)
    if signer is None:
        raise Unauthorized("Incorrect API key provided.")
    signer.verify(offered)


StoreDep = Annotated[Store, Depends(get_store)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
EngineDep = Annotated[RunEngine, Depends(get_engine)]
SandboxDep = Annotated[Sandboxes, Depends(get_sandbox)]
ContainersDep = Annotated[ContainerService, Depends(get_containers)]
ExecsDep = Annotated[ExecService, Depends(get_execs)]
ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]
ResponsesDep = Annotated[ResponsesService, Depends(get_responses)]
